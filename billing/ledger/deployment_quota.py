"""Providers' quotas per deployment (the catalogue's `rpm_limit` / `tpm_limit`): requests and tokens sent to it
this minute, so the engine skips a deployment at its quota instead of collecting its 429s.

Counted per minute in this process; with Redis (the store our own limits use), each process adds what it sent
to one counter per deployment and minute, and reads the others' back, every SYNC_S. A cluster can so overshoot
a quota by what its processes send within one sync (a few calls): the provider's own 429, held by the engine,
covers the rest. Without Redis (the embedded default: one process) the local count is the whole count.
Tokens are the engine's estimate at attempt time (counted prompt + requested output).
"""

import asyncio
import logging
import time
from collections.abc import Callable

from core.values import Target

log = logging.getLogger(__name__)

SYNC_S = 0.25
COUNTER_TTL_S = 180  # a minute's counters outlive it long enough for a late reader, then go


class DeploymentQuota:
    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        # (deployment, minute) -> [requests, tokens]: sent by this process, and not yet added to Redis
        self._own: dict[tuple[str, int], list[int]] = {}
        self._unsynced: dict[tuple[str, int], list[int]] = {}
        # (deployment, minute) -> [requests, tokens] sent by the other processes, as last read
        self._others: dict[tuple[str, int], list[int]] = {}

    def _minute(self) -> int:
        return int(self._clock() // 60)

    def over(self, target: Target) -> str | None:
        """ "rpm-limit" / "tpm-limit" when the deployment has used its quota this minute, else None."""
        if target.rpm_limit is None and target.tpm_limit is None:
            return None
        key = (target.deployment, self._minute())
        own, others = self._own.get(key, (0, 0)), self._others.get(key, (0, 0))
        if target.rpm_limit is not None and own[0] + others[0] >= target.rpm_limit:
            return "rpm-limit"
        if target.tpm_limit is not None and own[1] + others[1] >= target.tpm_limit:
            return "tpm-limit"
        return None

    def count(self, target: Target, tokens: int) -> None:
        """One attempt sent to the deployment, with this many tokens (estimated)."""
        if target.rpm_limit is None and target.tpm_limit is None:
            return
        key = (target.deployment, self._minute())
        for table in (self._own, self._unsynced):
            counts = table.setdefault(key, [0, 0])
            counts[0] += 1
            counts[1] += max(0, tokens)
        self._forget_old(key[1])

    def _forget_old(self, minute: int) -> None:
        if len(self._own) > 4096 or any(m < minute - 1 for _, m in self._own):
            for table in (self._own, self._others):
                for key in [k for k in table if k[1] < minute - 1]:
                    del table[key]

    async def sync_once(self, redis_client, prefix: str) -> None:
        """Add what this process sent since the last sync; read the totals of the deployments it knows this
        minute, and keep what the others sent."""
        unsynced, self._unsynced = self._unsynced, {}
        try:
            async with redis_client.pipeline(transaction=False) as pipe:
                for (deployment, minute), (requests, tokens) in unsynced.items():
                    key = f"{prefix}:quota:{deployment}:{minute}"
                    pipe.hincrby(key, "r", requests)
                    pipe.hincrby(key, "t", tokens)
                    pipe.expire(key, COUNTER_TTL_S)
                minute = self._minute()
                known = sorted({d for d, m in self._own if m == minute} | {d for d, m in self._others if m == minute})
                for deployment in known:
                    pipe.hmget(f"{prefix}:quota:{deployment}:{minute}", "r", "t")
                results = await pipe.execute()
        except BaseException:
            # Not lost: added again on the next sync.
            for key, counts in unsynced.items():
                pending = self._unsynced.setdefault(key, [0, 0])
                pending[0] += counts[0]
                pending[1] += counts[1]
            raise
        for deployment, totals in zip(known, results[len(results) - len(known) :], strict=True):
            requests, tokens = (int(v) if v is not None else 0 for v in totals)
            own = self._own.get((deployment, minute), [0, 0])
            pending = self._unsynced.get((deployment, minute), [0, 0])
            # Redis holds everyone's synced counts, ours included; ours since are still pending.
            self._others[(deployment, minute)] = [
                max(0, requests - (own[0] - pending[0])),
                max(0, tokens - (own[1] - pending[1])),
            ]

    def watch(self, deployments: set[str]) -> None:
        """Read these deployments' totals from the next sync on, even before this process sends them anything."""
        minute = self._minute()
        for deployment in deployments:
            self._others.setdefault((deployment, minute), [0, 0])

    async def run_forever(self, redis_client, prefix: str, *, limited: Callable[[], set[str]]) -> None:
        failing = False
        while True:
            await asyncio.sleep(SYNC_S)
            watched = limited()
            if not watched and not self._unsynced:
                continue  # no deployment has a quota: nothing to count, no Redis call
            self.watch(watched)
            try:
                await self.sync_once(redis_client, prefix)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not failing:
                    log.warning("deployment quotas: Redis unreachable (%s); counting this process's calls only", exc)
                failing = True
                await asyncio.sleep(min(5.0, SYNC_S * 8))
                continue
            if failing:
                log.info("deployment quotas: shared through Redis again")
            failing = False
