"""Per-key requests-per-minute and tokens-per-minute, counted in fixed one-minute windows in this process.

With several gateway processes each process counts its own share; the limits are therefore per process
until the shared (Redis) limiter of the routing-engine issue replaces this module.
"""

import time

from routing.engine.snapshot import Principal
from routing.proxy.errors import RateLimited


class MinuteWindows:
    def __init__(self) -> None:
        self._requests: dict[int, tuple[int, int]] = {}  # key_id -> (minute, count)
        self._tokens: dict[int, tuple[int, int]] = {}

    def check(self, principal: Principal, *, now: float | None = None) -> None:
        if principal.rpm_limit is None and principal.tpm_limit is None:
            return
        now = now or time.time()
        minute = int(now // 60)
        retry_after = 60 - int(now % 60)
        if principal.tpm_limit is not None:
            window, used = self._tokens.get(principal.key_id, (minute, 0))
            if window == minute and used >= principal.tpm_limit:
                raise RateLimited(
                    f"Tokens-per-minute limit of {principal.tpm_limit} reached for this key.",
                    retry_after_s=retry_after,
                    code="tokens_per_minute_exceeded",
                )
        if principal.rpm_limit is not None:
            window, count = self._requests.get(principal.key_id, (minute, 0))
            count = count + 1 if window == minute else 1
            if count > principal.rpm_limit:
                raise RateLimited(
                    f"Requests-per-minute limit of {principal.rpm_limit} reached for this key.",
                    retry_after_s=retry_after,
                    code="requests_per_minute_exceeded",
                )
            self._requests[principal.key_id] = (minute, count)

    def add_tokens(self, principal: Principal, tokens: int, *, now: float | None = None) -> None:
        if principal.tpm_limit is None or not tokens:
            return
        minute = int((now or time.time()) // 60)
        window, used = self._tokens.get(principal.key_id, (minute, 0))
        self._tokens[principal.key_id] = (minute, (used if window == minute else 0) + tokens)


windows = MinuteWindows()
