"""A change-feed read that keeps failing (the database is away) is said once, and its end once: not a
traceback every TOLLWAY_SNAPSHOT_REFRESH_S."""

import asyncio
import logging

import pytest

from routing.control_plane import refresher

pytestmark = pytest.mark.anyio


async def test_a_failing_refresh_warns_once_and_says_when_it_works_again(monkeypatch, settings, caplog):
    settings.TOLLWAY_SNAPSHOT_REFRESH_S = 0.001
    calls = {"n": 0}
    recovered = asyncio.Event()

    async def refresh_failing_ten_times(self):
        calls["n"] += 1
        if calls["n"] <= 10:
            raise ConnectionRefusedError("connection refused")
        recovered.set()

    monkeypatch.setattr(refresher.ControlPlane, "catch_up", refresh_failing_ten_times)
    caplog.set_level(logging.DEBUG, logger=refresher.log.name)
    task = asyncio.get_running_loop().create_task(refresher.ControlPlane()._read_forever())
    try:
        await asyncio.wait_for(recovered.wait(), timeout=10)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    said = [(r.levelno, r.getMessage()) for r in caplog.records if r.levelno >= logging.INFO]
    assert len(said) == 2
    assert said[0][0] == logging.WARNING and "change feed read failed (connection refused)" in said[0][1]
    assert said[1][0] == logging.INFO and "works again" in said[1][1]
    assert not any(r.exc_info for r in caplog.records)
