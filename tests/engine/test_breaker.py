"""BreakerBoard alone, on a fake clock: every transition of a deployment's breaker, holds, and what it tells
other processes."""

from core.values import BreakerPolicy
from routing.engine.breaker import CLOSED, HALF_OPEN, HELD, OPEN, BreakerBoard

WALL_START = 1_000_000.0


class FakeClock:
    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_board() -> tuple[BreakerBoard, FakeClock, FakeClock]:
    clock, wall = FakeClock(100.0), FakeClock(WALL_START)
    return BreakerBoard(clock=clock, wall=wall), clock, wall


def make_policy(**changes) -> BreakerPolicy:
    return BreakerPolicy(**changes)


def record_many(board: BreakerBoard, policy: BreakerPolicy, outcomes: str, deployment: str = "gpt") -> None:
    """'x' a failure, '.' a success."""
    for outcome in outcomes:
        board.record(deployment, policy, ok=outcome == ".")


def opened(board: BreakerBoard, policy: BreakerPolicy, deployment: str = "gpt") -> None:
    record_many(board, policy, "x" * policy.consecutive_failures, deployment)
    assert board.state(deployment, policy) == OPEN


# --- closed -> open ---------------------------------------------------------------------------------------


def test_a_breaker_opens_after_consecutive_failures():
    board, _, _ = make_board()
    policy = make_policy(consecutive_failures=5)

    record_many(board, policy, "xxxx")
    assert board.state("gpt", policy) == CLOSED
    assert not board.is_open("gpt", policy)

    board.record("gpt", policy, ok=False)
    assert board.state("gpt", policy) == OPEN
    assert board.is_open("gpt", policy)


def test_a_success_between_failures_starts_the_consecutive_count_again():
    board, _, _ = make_board()
    policy = make_policy(consecutive_failures=3, min_calls=1000)

    record_many(board, policy, "xx.xx.xx")

    assert board.state("gpt", policy) == CLOSED


def test_a_breaker_opens_when_enough_calls_in_the_window_fail_at_the_error_rate():
    board, _, _ = make_board()
    policy = make_policy(consecutive_failures=100, error_rate=0.5, min_calls=10)

    record_many(board, policy, ".x.x.x.x.")  # 4 of 9: below min_calls either way
    assert board.state("gpt", policy) == CLOSED

    board.record("gpt", policy, ok=False)  # 5 of 10
    assert board.state("gpt", policy) == OPEN


def test_the_error_rate_does_not_open_a_breaker_below_min_calls():
    board, _, _ = make_board()
    policy = make_policy(consecutive_failures=100, error_rate=0.5, min_calls=10)

    record_many(board, policy, "xxxxxxxx.")  # 8 of 9 failed, but only 9 calls

    assert board.state("gpt", policy) == CLOSED


def test_an_error_rate_under_the_threshold_keeps_the_breaker_closed():
    board, _, _ = make_board()
    policy = make_policy(consecutive_failures=100, error_rate=0.5, min_calls=10)

    record_many(board, policy, ".x.x.x.x..x" + ".x" * 20)  # 4 of 10, then under half all along

    assert board.state("gpt", policy) == CLOSED


def test_old_failures_slide_out_of_the_window():
    board, clock, _ = make_board()
    policy = make_policy(consecutive_failures=100, error_rate=0.5, min_calls=10, window_s=30)

    record_many(board, policy, "xxxxx")
    clock.advance(31)
    record_many(board, policy, "....x")  # 1 of 5 in the window now; 6 of 10 had the first five stayed

    assert board.state("gpt", policy) == CLOSED


def test_failures_still_inside_the_window_count():
    board, clock, _ = make_board()
    policy = make_policy(consecutive_failures=100, error_rate=0.5, min_calls=10, window_s=30)

    record_many(board, policy, "xxxxx")
    clock.advance(25)
    record_many(board, policy, "....x")

    assert board.state("gpt", policy) == OPEN


# --- open, half-open, and back ----------------------------------------------------------------------------


def test_an_open_breaker_rejects_calls_until_its_cooldown_is_over():
    board, clock, _ = make_board()
    policy = make_policy(cooldown_s=30)
    opened(board, policy)

    clock.advance(29.999)

    assert board.acquire("gpt", policy) is False
    assert board.is_open("gpt", policy)
    assert board.state("gpt", policy) == OPEN


def test_a_cooled_breaker_hands_out_exactly_its_half_open_probes():
    board, clock, _ = make_board()
    policy = make_policy(cooldown_s=30, half_open_probes=2)
    opened(board, policy)
    clock.advance(30)

    assert board.state("gpt", policy) == HALF_OPEN
    assert not board.is_open("gpt", policy)
    assert [board.acquire("gpt", policy) for _ in range(4)] == [True, True, False, False]
    assert board.is_open("gpt", policy)
    assert board.state("gpt", policy) == HALF_OPEN


def test_a_closed_breaker_lets_every_call_through():
    board, _, _ = make_board()
    policy = make_policy()
    record_many(board, policy, "xx")

    assert all(board.acquire("gpt", policy) for _ in range(100))
    assert board.acquire("never-seen", policy)


def test_a_probe_success_closes_the_breaker_and_starts_its_counts_afresh():
    board, clock, _ = make_board()
    policy = make_policy(consecutive_failures=5, cooldown_s=30)
    opened(board, policy)
    clock.advance(30)
    assert board.acquire("gpt", policy)

    board.record("gpt", policy, ok=True)
    assert board.state("gpt", policy) == CLOSED

    record_many(board, policy, "xxxx")
    assert board.state("gpt", policy) == CLOSED


def test_a_probe_failure_opens_the_breaker_again_for_a_fresh_cooldown():
    board, clock, _ = make_board()
    policy = make_policy(cooldown_s=30)
    opened(board, policy)
    clock.advance(40)
    assert board.acquire("gpt", policy)

    board.record("gpt", policy, ok=False)

    assert board.state("gpt", policy) == OPEN
    clock.advance(29.9)
    assert board.acquire("gpt", policy) is False
    clock.advance(0.1)
    assert board.acquire("gpt", policy) is True


def test_outcomes_arriving_while_open_do_not_change_the_cooldown():
    board, clock, _ = make_board()
    policy = make_policy(cooldown_s=30)
    opened(board, policy)
    clock.advance(20)

    record_many(board, policy, "xxxxx.....")  # calls that started before it opened
    clock.advance(10)

    assert board.state("gpt", policy) == HALF_OPEN


def test_a_probe_that_never_reports_is_replaced_after_a_minute():
    board, clock, _ = make_board()
    policy = make_policy(cooldown_s=5, half_open_probes=1)
    opened(board, policy)
    clock.advance(5)
    assert board.acquire("gpt", policy)

    clock.advance(59)
    assert board.acquire("gpt", policy) is False
    clock.advance(1)
    assert not board.is_open("gpt", policy)
    assert board.acquire("gpt", policy) is True
    assert board.acquire("gpt", policy) is False


def test_reading_a_breaker_changes_nothing():
    board, clock, _ = make_board()
    policy = make_policy(cooldown_s=30, half_open_probes=1)
    opened(board, policy)
    board.drain_changes()
    clock.advance(30)

    for _ in range(10):
        board.state("gpt", policy)
        board.is_open("gpt", policy)
        board.is_open("unknown", policy)
        board.state("unknown", policy)
        board.held_for("unknown")
        board.snapshot()

    assert board.acquire("gpt", policy) is True  # the one probe is still there to hand out
    assert board.acquire("gpt", policy) is False
    assert set(board.snapshot()) == {"gpt"}
    assert board.drain_changes() == []


# --- holds ------------------------------------------------------------------------------------------------


def test_a_hold_skips_the_deployment_until_its_retry_after_is_over():
    board, clock, _ = make_board()
    policy = make_policy()

    board.hold("gpt", 5)

    assert board.is_open("gpt", policy)
    assert board.held_for("gpt") == 5
    assert board.state("gpt", policy) == CLOSED  # a 429 is not a failure
    clock.advance(4.5)
    assert board.is_open("gpt", policy)
    assert board.held_for("gpt") == 0.5
    clock.advance(0.5)
    assert not board.is_open("gpt", policy)
    assert board.held_for("gpt") == 0


def test_a_hold_lasts_an_hour_at_most():
    board, _, _ = make_board()

    board.hold("gpt", 10**9)

    assert board.held_for("gpt") == 3600


def test_a_shorter_hold_does_not_cut_a_longer_one_short():
    board, _, _ = make_board()

    board.hold("gpt", 60)
    board.hold("gpt", 1)

    assert board.held_for("gpt") == 60


def test_a_hold_of_nothing_is_ignored():
    board, _, _ = make_board()

    for seconds in (0, -5, float("nan")):
        board.hold("gpt", seconds)

    assert board.held_for("gpt") == 0
    assert board.drain_changes() == []


# --- what the board shows ---------------------------------------------------------------------------------


def test_the_snapshot_names_every_known_deployment_with_its_state():
    board, clock, _ = make_board()
    policy = make_policy(cooldown_s=30)
    board.record("healthy", policy, ok=True)
    opened(board, policy, "cooled")
    clock.advance(30)
    opened(board, policy, "broken")
    board.hold("limited", 10)

    assert board.snapshot() == {"healthy": CLOSED, "cooled": HALF_OPEN, "broken": OPEN, "limited": CLOSED}


def test_memory_stays_bounded_after_a_hundred_thousand_calls():
    board, clock, _ = make_board()
    short, long = make_policy(window_s=30, min_calls=10**6, consecutive_failures=3), make_policy(window_s=86_400)

    for n in range(100_000):
        clock.advance(0.37)  # ten hours of traffic
        board.record("short", short, ok=n % 3 != 0)
        board.record("long", long, ok=n % 3 != 0)
        board.record(f"d{n % 50}", short, ok=n % 7 == 0)  # opens and closes again and again
        board.acquire(f"d{n % 50}", short)

    assert len(board._breakers["short"].buckets) <= 30
    assert len(board._breakers["long"].buckets) <= 60
    assert len(board._breakers) == 52
    assert len(board.drain_changes()) <= 50  # the latest change of each, not every transition


# --- between processes ------------------------------------------------------------------------------------


def test_local_transitions_are_drained_once_with_their_wall_clock_ends():
    board, clock, wall = make_board()
    policy = make_policy(cooldown_s=30)

    opened(board, policy, "broken")
    board.hold("limited", 12)
    assert board.drain_changes() == [("broken", OPEN, WALL_START + 30), ("limited", HELD, WALL_START + 12)]
    assert board.drain_changes() == []

    clock.advance(30)
    wall.advance(30)
    board.acquire("broken", policy)
    board.record("broken", policy, ok=True)
    assert board.drain_changes() == [("broken", CLOSED, None)]


def test_a_remote_open_is_applied_with_the_time_left_on_its_cooldown():
    board, clock, _ = make_board()
    policy = make_policy()

    board.apply_remote("gpt", OPEN, until_wall=WALL_START + 20)

    assert board.state("gpt", policy) == OPEN
    assert board.acquire("gpt", policy) is False
    clock.advance(20)
    assert board.state("gpt", policy) == HALF_OPEN
    assert board.drain_changes() == []  # not ours to publish again


def test_a_remote_close_closes_an_open_breaker():
    board, _, _ = make_board()
    policy = make_policy()
    opened(board, policy)
    board.drain_changes()

    board.apply_remote("gpt", CLOSED, until_wall=None)

    assert board.state("gpt", policy) == CLOSED
    assert board.acquire("gpt", policy)
    assert board.drain_changes() == []


def test_a_remote_hold_holds_the_deployment_here():
    board, _, _ = make_board()
    policy = make_policy()

    board.apply_remote("gpt", HELD, until_wall=WALL_START + 7)

    assert board.is_open("gpt", policy)
    assert board.held_for("gpt") == 7
    assert board.drain_changes() == []


def test_remote_states_already_over_or_malformed_change_nothing():
    board, _, _ = make_board()

    board.apply_remote("past", OPEN, until_wall=WALL_START - 1)
    board.apply_remote("held-past", HELD, until_wall=WALL_START)
    board.apply_remote("no-end", OPEN, until_wall=None)
    board.apply_remote("endless", OPEN, until_wall=float("inf"))
    board.apply_remote("weird", "ajar", until_wall=WALL_START + 10)
    board.apply_remote("unknown", CLOSED, until_wall=None)
    board.apply_remote("x" * 201, OPEN, until_wall=WALL_START + 10)

    assert board.snapshot() == {}


def test_a_remote_open_lasts_a_day_at_most():
    board, clock, _ = make_board()
    policy = make_policy()

    board.apply_remote("gpt", OPEN, until_wall=WALL_START + 1e300)
    clock.advance(86_400)

    assert board.state("gpt", policy) == HALF_OPEN


def test_a_remote_open_ending_sooner_does_not_shorten_a_local_one():
    board, clock, _ = make_board()
    policy = make_policy(cooldown_s=30)
    opened(board, policy)

    board.apply_remote("gpt", OPEN, until_wall=WALL_START + 5)
    clock.advance(10)

    assert board.state("gpt", policy) == OPEN


def test_deployments_only_redis_told_of_are_bounded():
    board, _, _ = make_board()

    for n in range(10_050):
        board.apply_remote(f"d{n}", OPEN, until_wall=WALL_START + 10)

    assert len(board.snapshot()) == 10_000
