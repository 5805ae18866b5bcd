import fcntl
import os

from billing.outbox import Outbox, claim_orphans, read_rows


def test_a_live_processes_segment_is_not_claimed_but_a_dead_ones_is(tmp_path):
    outbox = Outbox(tmp_path)
    outbox.open()
    outbox.append({"request_id": "req_1"})

    assert list(claim_orphans(tmp_path)) == []  # we hold the lock: alive

    [segment] = list(tmp_path.glob("*.jsonl"))
    fcntl.flock(outbox.current.fd, fcntl.LOCK_UN)  # what the kernel does when the process dies
    claimed = [(path, read_rows(path)) for path in claim_orphans(tmp_path)]

    assert claimed == [(segment, [{"request_id": "req_1"}])]
    assert not segment.exists()
    os.close(outbox.current.fd)


def test_a_torn_last_line_is_skipped_and_the_rest_kept(tmp_path):
    (tmp_path / "dead.jsonl").write_bytes(b'{"request_id": "req_1"}\n{"request_id": "re')
    [rows] = [read_rows(path) for path in claim_orphans(tmp_path)]
    assert rows == [{"request_id": "req_1"}]


def test_a_write_that_fails_seals_its_segment_and_later_rows_are_refused_until_a_new_one_opens(tmp_path):
    outbox = Outbox(tmp_path)
    outbox.open()
    assert outbox.append({"request_id": "req_1"}) is True
    first = outbox.current
    os.close(first.fd)
    first.fd = os.open(os.devnull, os.O_RDONLY)  # writes now fail, as on a full or failing disk

    assert outbox.append({"request_id": "req_2"}) is False
    assert outbox.current is None and outbox.sealed == [first]
    assert outbox.append({"request_id": "req_3"}) is False

    assert outbox.reopen() is True
    assert outbox.append({"request_id": "req_3"}) is True
    assert read_rows(first.path) == [{"request_id": "req_1"}]
    outbox.close()
    assert list(tmp_path.glob("*.jsonl")) == []
