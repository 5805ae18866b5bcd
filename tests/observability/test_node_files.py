import fcntl
import os

from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.multiprocess import MultiProcessCollector

from routing.observability import node_files


def write(path, name: str, value: float, **labels: str) -> None:
    values = MmapedDict(str(path))
    values.write_value(mmap_key(name.removesuffix("_total"), name, list(labels), list(labels.values()), "h"), value, 0)
    values.close()


def node_totals(directory) -> dict[str, float]:
    merged = MultiProcessCollector.merge([str(p) for p in directory.glob("*.db")])
    return {s.name: s.value for metric in merged for s in metric.samples}


def a_worker(directory, worker_id: str, *, requests: float, queue_rows: float) -> None:
    write(directory / f"counter_{worker_id}.db", "tollway_requests_total", requests, code="200")
    write(directory / f"gauge_livesum_{worker_id}.db", "tollway_usage_queue_rows", queue_rows)
    (directory / f"live_{worker_id}.lock").touch()


def hold_live_lock(directory, worker_id: str) -> int:
    fd = os.open(directory / f"live_{worker_id}.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def test_a_dead_workers_counters_move_to_the_archive_and_its_gauges_go(tmp_path):
    a_worker(tmp_path, "101xdead", requests=7, queue_rows=3)
    a_worker(tmp_path, "102xlive", requests=5, queue_rows=2)
    fd = hold_live_lock(tmp_path, "102xlive")
    try:
        with node_files.directory_lock(tmp_path):
            dead = node_files.sweep(tmp_path)
        totals = node_totals(tmp_path)
    finally:
        os.close(fd)

    assert dead == ["101xdead"]
    assert totals["tollway_requests_total"] == 12  # nothing lost with the process
    assert totals["tollway_usage_queue_rows"] == 2  # only the live worker's queue
    assert not list(tmp_path.glob("*101xdead*"))
    assert (tmp_path / "counter_102xlive.db").exists()


def test_archiving_twice_adds_each_dead_worker_once(tmp_path):
    a_worker(tmp_path, "201xdead", requests=4, queue_rows=0)
    with node_files.directory_lock(tmp_path):
        node_files.sweep(tmp_path)
    a_worker(tmp_path, "202xdead", requests=6, queue_rows=0)
    with node_files.directory_lock(tmp_path):
        node_files.sweep(tmp_path)
        node_files.sweep(tmp_path)

    assert node_totals(tmp_path)["tollway_requests_total"] == 10


def test_a_node_starting_with_no_live_worker_starts_from_zero(tmp_path, monkeypatch):
    monkeypatch.setattr(node_files, "_live_lock", None)  # this process has written nothing yet
    a_worker(tmp_path, "301xdead", requests=9, queue_rows=1)
    write(tmp_path / "counter_archive.db", "tollway_requests_total", 40, code="200")

    with node_files.directory_lock(tmp_path):
        node_files.sweep(tmp_path, is_starting=True)

    assert node_totals(tmp_path) == {}
