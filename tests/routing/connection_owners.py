"""Which of our gateway processes opened a loopback connection, read from Linux's /proc: a gateway sends no
header that names it, but the socket behind a request's client address belongs to exactly one process.

    owners = ConnectionOwners(server_port, {"a": pid_a, "b": pid_b})
    owners(("127.0.0.1", 51234))   # -> "a", or "" when none of them holds that socket

A connection is looked up once (the gateways keep their upstream connections alive), on its first request.
"""

import os
import threading
from pathlib import Path

PROC_NET_TCP = Path("/proc/net/tcp")
IS_AVAILABLE = PROC_NET_TCP.exists()


def _hex_port(port: int) -> str:
    return f"{port:04X}"


class ConnectionOwners:
    def __init__(self, server_port: int, pids: dict[str, int]) -> None:
        self.server_port = server_port
        self.pids = dict(pids)
        self._known: dict[int, str] = {}  # client port -> name
        self._lock = threading.Lock()

    def __call__(self, client: tuple[str, int]) -> str:
        port = client[1]
        with self._lock:
            if port in self._known:
                return self._known[port]
        name = self._owner_of(port)
        if name:  # an unknown owner is looked up again next time: the socket may not be listed yet
            with self._lock:
                self._known[port] = name
        return name

    def _owner_of(self, client_port: int) -> str:
        inode = self._inode_of(client_port)
        if inode is None:
            return ""
        wanted = f"socket:[{inode}]"
        for name, pid in self.pids.items():
            fd_dir = f"/proc/{pid}/fd"
            try:
                descriptors = os.listdir(fd_dir)
            except OSError:
                continue
            for fd in descriptors:
                try:
                    if os.readlink(f"{fd_dir}/{fd}") == wanted:
                        return name
                except OSError:
                    continue
        return ""

    def _inode_of(self, client_port: int) -> int | None:
        """The inode of the gateway's end: local 127.0.0.1:client_port, remote 127.0.0.1:server_port."""
        local, remote = f"0100007F:{_hex_port(client_port)}", f"0100007F:{_hex_port(self.server_port)}"
        with PROC_NET_TCP.open() as table:
            next(table)
            for line in table:
                fields = line.split()
                if fields[1] == local and fields[2] == remote:
                    return int(fields[9])
        return None
