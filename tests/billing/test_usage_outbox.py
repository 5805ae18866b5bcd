import fcntl
import os

from billing.outbox import Outbox, claim_orphans


def test_a_live_processes_segment_is_not_claimed_but_a_dead_ones_is(tmp_path):
    outbox = Outbox(tmp_path)
    outbox.open()
    outbox.append({"request_id": "req_1"})

    assert list(claim_orphans(tmp_path)) == []  # we hold the lock: alive

    [segment] = list(tmp_path.glob("*.jsonl"))
    fcntl.flock(outbox._segment.fd, fcntl.LOCK_UN)  # what the kernel does when the process dies
    claimed = [(path, rows) for path, rows in claim_orphans(tmp_path)]

    assert claimed == [(segment, [{"request_id": "req_1"}])]
    assert not segment.exists()
    os.close(outbox._segment.fd)


def test_a_torn_last_line_is_skipped_and_the_rest_kept(tmp_path):
    (tmp_path / "dead.jsonl").write_bytes(b'{"request_id": "req_1"}\n{"request_id": "re')
    [(_, rows)] = list(claim_orphans(tmp_path))
    assert rows == [{"request_id": "req_1"}]
