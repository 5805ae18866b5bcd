import os
import tempfile

# Tests run upstream servers on loopback; the platform must allow them as provider base URLs.
os.environ.setdefault("TOLLWAY_ALLOW_LOOPBACK_UPSTREAMS", "1")
os.environ.setdefault("TOLLWAY_DATA_DIR", tempfile.mkdtemp(prefix="tollway-test-"))
os.environ.setdefault("TOLLWAY_USAGE_FLUSH_INTERVAL_S", "0.05")
os.environ.setdefault("TOLLWAY_SNAPSHOT_REFRESH_S", "0.5")

import pytest  # noqa: E402


@pytest.fixture
def anyio_backend():
    return "asyncio"
