"""Loaded as a pytest plugin (`-p tests.environment` in pyproject.toml) so these defaults are in place
before pytest-django imports the settings; gateway processes started by tests inherit them."""

import os
import tempfile

# Tests run upstream servers on loopback; the platform must allow them as provider base URLs.
os.environ.setdefault("TOLLWAY_ALLOW_LOOPBACK_UPSTREAMS", "1")
os.environ.setdefault("TOLLWAY_DATA_DIR", tempfile.mkdtemp(prefix="tollway-test-"))
os.environ.setdefault("TOLLWAY_USAGE_FLUSH_INTERVAL_S", "0.05")
os.environ.setdefault("TOLLWAY_SNAPSHOT_REFRESH_S", "0.5")
os.environ.setdefault("TOLLWAY_TEST_FAST_PASSWORDS", "1")
# Off unless a test asks for it: a schedule aggregating in the background would race tests that aggregate.
os.environ.setdefault("TOLLWAY_EMBEDDED_BEAT", "0")
