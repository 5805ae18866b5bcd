"""Secrets generated on first start for the embedded default; production sets them in the environment."""

import base64
import os
import secrets
from pathlib import Path


def _read_or_write(path: Path, make) -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    value = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    # O_EXCL: two processes starting together must agree on one secret.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(value)
    return value


def load_or_create_secret(path: Path, *, nbytes: int) -> str:
    return _read_or_write(path, lambda: secrets.token_urlsafe(nbytes))


def load_or_create_fernet_key(path: Path) -> str:
    return _read_or_write(path, lambda: base64.urlsafe_b64encode(os.urandom(32)).decode())
