"""The embedded beat (config/embedded_beat.py): of several gateway processes, one at a time runs the schedule,
and another takes over when it stops."""

import threading
import time

from config.embedded_beat import EmbeddedBeat

SCHEDULE = {"tick": {"task": "tests.tick", "schedule": 0.02}}


class Runs:
    def __init__(self) -> None:
        self.by_beat: dict[str, int] = {}
        self._lock = threading.Lock()

    def recorder(self, name: str):
        def run(task: str) -> None:
            assert task == "tests.tick"
            with self._lock:
                self.by_beat[name] = self.by_beat.get(name, 0) + 1

        return run

    def wait_for(self, name: str, count: int, *, timeout_s: float = 10.0) -> int:
        deadline = time.monotonic() + timeout_s
        while self.by_beat.get(name, 0) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.by_beat.get(name, 0)


def beat(tmp_path, runs: Runs, name: str) -> EmbeddedBeat:
    return EmbeddedBeat(
        schedule=SCHEDULE, lock_path=tmp_path / "beat.lock", run_task=runs.recorder(name), leader_retry_s=0.02
    )


def test_only_the_process_holding_the_lock_runs_the_schedule_and_another_takes_over_when_it_stops(tmp_path):
    runs = Runs()
    first, second = beat(tmp_path, runs, "first"), beat(tmp_path, runs, "second")
    first.start()
    try:
        assert runs.wait_for("first", 1) >= 1
        second.start()
        assert runs.wait_for("first", runs.by_beat["first"] + 10) >= 10
        assert "second" not in runs.by_beat
        assert first.is_leader and not second.is_leader

        first.stop()
        assert runs.wait_for("second", 3) >= 3
        assert second.is_leader
    finally:
        first.stop()
        second.stop()


def test_a_failing_task_is_logged_and_the_schedule_goes_on(tmp_path, caplog):
    attempts = []

    def flaky(task: str) -> None:
        attempts.append(task)
        if len(attempts) == 1:
            raise RuntimeError("database is locked")

    embedded = EmbeddedBeat(schedule=SCHEDULE, lock_path=tmp_path / "beat.lock", run_task=flaky)
    embedded.start()
    try:
        deadline = time.monotonic() + 10
        while len(attempts) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        embedded.stop()
    assert len(attempts) >= 3
    assert "tick (tests.tick) failed" in caplog.text


def test_a_lock_file_that_cannot_be_created_is_reported_and_retried(tmp_path, caplog):
    runs = Runs()
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    embedded = EmbeddedBeat(
        schedule=SCHEDULE, lock_path=blocked / "beat.lock", run_task=runs.recorder("beat"), leader_retry_s=0.02
    )
    embedded.start()
    try:
        deadline = time.monotonic() + 10
        while caplog.text.count("cannot open") < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert caplog.text.count("cannot open") >= 2  # still trying, the thread alive
        assert runs.by_beat == {}
    finally:
        embedded.stop()
