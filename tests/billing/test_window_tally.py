"""Each process's share of the live rate windows, and what a store taking over is owed of it: pure bookkeeping,
hand-computed numbers."""

from billing.ledger.counters import Counter
from billing.ledger.tally import WindowTally

MINUTE = 29_409_120 * 60.0  # 2025-12-01 00:00 UTC, a minute boundary


def rpm(minute: float = MINUTE) -> Counter:
    return Counter(f"rpm:key:3:{int(minute // 60)}", "requests", 300, 1, minute, minute + 60, "key")


def tpm(minute: float = MINUTE) -> Counter:
    return Counter(f"tpm:key:3:{int(minute // 60)}", "tokens", 10_000, 27, minute, minute + 60, "key")


def owed(tally: WindowTally, epoch: str, now: float = MINUTE + 30) -> dict[str, int]:
    return {counter.key: delta for counter, delta in tally.owed(epoch, now)}


def test_the_store_taking_over_is_owed_everything_this_process_counted_in_live_windows():
    tally = WindowTally()
    assert owed(tally, "redis:a") == {}
    for _ in range(5):
        tally.counted("redis:a", [rpm(), tpm()], [1, 27])

    assert owed(tally, "redis:a") == {}  # the store it counted in has it all
    assert owed(tally, "database") == {rpm().key: 5, tpm().key: 135}


def test_what_was_carried_once_is_not_carried_again_by_a_concurrent_call():
    tally = WindowTally()
    tally.counted("redis:a", [rpm()], [1])

    first, second = owed(tally, "database"), owed(tally, "database")

    assert (first, second) == ({rpm().key: 1}, {})


def test_a_carry_that_did_not_reach_the_store_is_owed_again():
    tally = WindowTally()
    tally.counted("redis:a", [rpm()], [1])
    carry = tally.owed("database", MINUTE + 30)

    tally.returned("database", carry)

    assert owed(tally, "database") == {rpm().key: 1}


def test_going_back_to_a_store_owes_it_only_what_was_counted_elsewhere_since():
    tally = WindowTally()
    tally.counted("redis:a", [rpm()] * 4, [1] * 4)
    owed(tally, "database")
    tally.counted("database", [rpm()] * 3, [1] * 3)

    assert owed(tally, "redis:a") == {rpm().key: 3}  # Redis was unreachable, not emptied: it kept its 4
    assert owed(tally, "redis:b") == {rpm().key: 7}  # a Redis that restarted empty is owed the whole minute


def test_a_late_settle_in_the_store_left_behind_corrects_the_one_serving():
    tally = WindowTally()
    tally.counted("redis:a", [tpm()], [27])
    owed(tally, "database")  # 27 reserved tokens carried over

    tally.counted("redis:a", [tpm()], [21 - 27])  # it settles to 21 in Redis, after the switch
    tally.counted(None, [tpm()], [-2])  # another settles in no store (Redis went away with it)

    assert owed(tally, "database") == {tpm().key: -8}


def test_windows_two_minutes_past_their_end_are_forgotten():
    tally = WindowTally()
    tally.counted("redis:a", [rpm(MINUTE - 240)], [1])
    tally.counted("redis:a", [rpm()], [1])

    assert owed(tally, "database", now=MINUTE + 30) == {rpm().key: 1}
