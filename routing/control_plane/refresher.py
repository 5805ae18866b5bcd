"""Keeps one gateway process's view of the control plane current: the snapshot (catalogue, limits, budgets) and
the keys in use.

At start-up the process builds the snapshot once (no keys: they are looked up when first presented). Then it
reads the change feed after the last version it applied, every TOLLWAY_SNAPSHOT_REFRESH_S and at once when
Redis announces a change, and applies only what changed. A process too far behind, or behind the feed's
retained window, builds again from scratch. Database work runs on the control-plane thread, never on the
event loop; applying a batch on the loop costs what changed.

Bounds: with Redis, a change reaches every process within a publish and one read (well under 1 s); without
Redis, or while it is away, within TOLLWAY_SNAPSHOT_REFRESH_S plus one read, and /readyz says "periodic".
"""

import asyncio
import dataclasses
import logging
import time
from datetime import UTC, datetime, timedelta

from django.conf import settings

from config.db_thread import run_in_db
from core.prompts import PromptCatalogue
from core.values import Snapshot
from routing.control_plane import feed, loader, snapshot
from routing.control_plane.keys import KeyCache
from routing.engine import semantic
from routing.observability.readiness import CheckResult

log = logging.getLogger(__name__)

LANE = "control"  # the database thread for feed reads and key lookups, beside the usage writer's


async def _lookup(secret_hashes: list[str]):
    return await run_in_db(loader.principals_by_hash, secret_hashes, lane=LANE)


def _new_key_cache() -> KeyCache:
    return KeyCache(
        _lookup,
        size=settings.TOLLWAY_KEY_CACHE_SIZE,
        negative_ttl_s=settings.TOLLWAY_KEY_NEGATIVE_TTL_S,
        lookups_per_s=settings.TOLLWAY_KEY_LOOKUPS_PER_S,
    )


_keys = _new_key_cache()


def keys() -> KeyCache:
    return _keys


def _build() -> tuple[Snapshot, PromptCatalogue, int]:
    # The version is read first: a change committed during the build is applied again after it (harmless),
    # never skipped.
    version = loader.latest_version()
    aliases, baselines, policies = loader.catalogue()
    budgets = loader.budget_rules()
    prompts = loader.prompts()
    return (
        _assemble(
            aliases=aliases,
            baselines=baselines,
            policies=policies,
            budget_by_id=budgets,
            team_limits=loader.team_limits(),
            subscription_limits=loader.subscription_limits(),
            keys_have_limits=loader.keys_have_limits(),
            version=version,
        ),
        prompts,
        version,
    )


def _assemble(*, budget_by_id, **fields) -> Snapshot:
    by_scope: dict[tuple[str, int], list] = {}
    for rule in sorted(budget_by_id.values(), key=lambda r: r.budget_id):
        by_scope.setdefault((rule.scope, rule.target_id), []).append(rule)
    return Snapshot(
        budgets={scope: tuple(rules) for scope, rules in by_scope.items()},
        budget_by_id=budget_by_id,
        loaded_at=time.time(),
        **fields,
    )


def _merged(current: Snapshot, delta: loader.Delta, version: int) -> Snapshot:
    def patch(mapping: dict, changes: dict) -> dict:
        if not changes:
            return mapping
        patched = dict(mapping)
        for key, value in changes.items():
            if value is None:
                patched.pop(key, None)
            else:
                patched[key] = value
        return patched

    if delta.catalogue is not None:
        aliases, baselines, policies = delta.catalogue
    else:
        aliases, baselines, policies = current.aliases, current.baselines, current.policies
    return _assemble(
        aliases=aliases,
        baselines=baselines,
        policies=policies,
        budget_by_id=patch(current.budget_by_id, delta.budgets),
        team_limits=patch(current.team_limits, delta.team_limits),
        subscription_limits=patch(current.subscription_limits, delta.subscription_limits),
        keys_have_limits=current.keys_have_limits or delta.keys_have_limits,
        version=version,
    )


def _merged_prompts(current: PromptCatalogue, delta: loader.Delta) -> PromptCatalogue | None:
    """The prompts after this batch; None when it changed none of them."""
    if delta.prompts is not None:
        return delta.prompts
    if not delta.bundling_subscriptions:
        return None
    return dataclasses.replace(
        current, bundling_subscriptions={**current.bundling_subscriptions, **delta.bundling_subscriptions}
    )


class ControlPlane:
    """One per gateway process (routing/proxy/lifespan.py starts it)."""

    def __init__(self) -> None:
        self.version = 0
        self.rebuilds = 0
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._listening = False  # subscribed to Redis and hearing it
        self._failing_since: float | None = None

    async def start(self) -> None:
        global _keys
        _keys = _new_key_cache()
        await self.rebuild()
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._read_forever(), name="control-plane-reader"))
        if settings.REDIS_URL:
            self._tasks.append(loop.create_task(self._listen_forever(), name="control-plane-listener"))
        if settings.TOLLWAY_KEY_WARM_START_H > 0:
            self._tasks.append(loop.create_task(self._warm_start(), name="control-plane-warm-start"))

    async def stop(self) -> None:
        await _keys.aclose()
        for task in self._tasks:
            task.cancel()
        # Bounded: a Redis connection that no longer answers must not hold up the process's exit.
        done, pending = await asyncio.wait(self._tasks, timeout=3)
        if pending:
            log.warning("control plane: %d task(s) did not stop within 3 s; exiting without them", len(pending))
        self._tasks.clear()

    async def _warm_start(self) -> None:
        """Read ahead the keys used lately, after start-up (it does not delay readiness): a restarted process in
        a large tenant then serves its busy keys from memory instead of learning them at the lookup cap."""
        since = datetime.now(UTC) - timedelta(hours=settings.TOLLWAY_KEY_WARM_START_H)
        try:
            ids = await run_in_db(loader.recently_used_key_ids, since=since, limit=_keys.size, lane=LANE)
            kept = 0
            # Most recent first; each is put at the eviction end, so the least recent end up first out.
            for start in range(0, len(ids), 1000):
                chunk = ids[start : start + 1000]
                for _ in range(5):  # a change applied meanwhile makes what was read stale: read it again
                    generation = _keys.generation
                    found = await run_in_db(loader.principals_by_id, chunk, lane=LANE)
                    in_chunk = [found[i] for i in chunk if found.get(i) is not None]
                    preloaded = _keys.preload(in_chunk, generation=generation)
                    if preloaded is not None:
                        kept += preloaded
                        break
        except Exception as exc:
            log.warning("key warm start stopped (%s); keys are looked up as they are presented", exc)
            return
        log.info("key warm start: %d keys used in the last %g h read ahead", kept, settings.TOLLWAY_KEY_WARM_START_H)

    async def rebuild(self) -> None:
        # Keys in memory may be stale in any way: they are read again with the rest (not dropped, which would
        # send every caller of a busy process to the lookup cap at once).
        in_memory = _keys.key_ids(every=True)
        _keys.begin_change()
        reloaded: dict = {}
        try:
            built, prompts, version = await run_in_db(_build, lane=LANE)
            if in_memory:
                reloaded = await run_in_db(loader.principals_by_id, in_memory, lane=LANE)
        finally:
            _keys.finish_change(reloaded)
        _keys.forget_unknown()
        snapshot.install(built)
        snapshot.install_prompts(prompts)
        semantic.warm(built.policies)  # only a snapshot with a semantic alias loads the embedding model
        self.version = version
        self.rebuilds += 1

    async def catch_up(self) -> None:
        """Apply every change committed after self.version."""
        limit = settings.TOLLWAY_CHANGES_MAX_BATCH
        page = await run_in_db(loader.read_changes, self.version, limit=limit, lane=LANE)
        if page.must_rebuild:
            log.info("change feed: %d changes behind (or it restarted); building afresh", page.latest - self.version)
            await self.rebuild()
            return
        current = snapshot.current()
        if not page.changes:
            snapshot.install(dataclasses.replace(current, loaded_at=time.time()))  # confirmed current
            return
        # From here until the reloads are in, lookups are used but not kept: one that read a key before these
        # changes committed and finished after the keys to reload were chosen would stay stale. One that
        # finished earlier is in memory, so it is chosen and reloaded with the rest.
        _keys.begin_change()
        reloaded: dict = {}
        try:
            bundling = snapshot.prompts().bundling_products
            delta = await run_in_db(loader.resolve, page.changes, bundling_products=bundling, lane=LANE)
            if delta.needs_rebuild:
                _keys.finish_change()
                await self.rebuild()
                return
            stale = _keys.key_ids(teams=delta.team_ids, keys=delta.key_ids, every=delta.every_cached_key)
            if stale:
                reloaded = await run_in_db(loader.principals_by_id, stale, lane=LANE)
            merged = _merged(current, delta, page.latest)
            snapshot.install(merged)
            prompts = _merged_prompts(snapshot.prompts(), delta)
            if prompts is not None:
                snapshot.install_prompts(prompts)
            semantic.warm(merged.policies)
            self.version = page.latest
        finally:
            _keys.finish_change(reloaded)

    async def _read_forever(self) -> None:
        interval = settings.TOLLWAY_SNAPSHOT_REFRESH_S
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=interval)
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                await self.catch_up()
            except Exception as exc:
                # Keep serving what we know; a database blip must not take the gateway down. Said once per
                # outage, not every interval.
                if self._failing_since is None:
                    self._failing_since = time.monotonic()
                    log.warning("change feed read failed (%s); serving what is known until it works again", exc)
                else:
                    log.debug("change feed read still failing: %s", exc)
                continue
            if self._failing_since is not None:
                log.info("change feed read works again after %.1f s", time.monotonic() - self._failing_since)
                self._failing_since = None

    async def _listen_forever(self) -> None:
        import redis.asyncio as redis

        backoff_s = 0.5
        while True:
            client = redis.Redis.from_url(
                settings.REDIS_URL, socket_connect_timeout=2, health_check_interval=10, socket_keepalive=True
            )
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(feed.channel())
                if not self._listening:
                    log.info("change feed: notified through Redis")
                self._listening = True
                backoff_s = 0.5
                self._wake.set()  # anything published while we were not listening
                async for message in pubsub.listen():
                    if message["type"] == "message":
                        self._wake.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._listening:
                    log.warning(
                        "change feed: lost Redis notifications (%s); reading the feed every %g s until it is back",
                        exc,
                        settings.TOLLWAY_SNAPSHOT_REFRESH_S,
                    )
                self._listening = False
            finally:
                # asyncio.timeout, not wait_for: on Python 3.11 a wait_for here can swallow the task's own
                # cancellation, and the process then hangs in shutdown with this subscription open.
                try:
                    async with asyncio.timeout(1):
                        await pubsub.aclose()
                    async with asyncio.timeout(1):
                        await client.aclose()
                except Exception as exc:  # a connection already gone cannot be closed politely
                    log.debug("change feed: closing the Redis subscription: %s", exc)
            await asyncio.sleep(backoff_s)
            backoff_s = min(backoff_s * 2, 5.0)

    async def readiness(self) -> CheckResult:
        notified = bool(settings.REDIS_URL) and self._listening
        detail = {
            "mode": "notify" if notified else "periodic",
            "version": self.version,
            "keys_in_memory": len(_keys),
            "refresh_s": settings.TOLLWAY_SNAPSHOT_REFRESH_S,
        }
        if settings.REDIS_URL and not notified:
            detail["reason"] = "Redis notifications are not arriving: changes are read every refresh_s seconds"
        if self._failing_since is not None:
            detail["failing_for_s"] = round(time.monotonic() - self._failing_since, 1)
        return CheckResult(self._failing_since is None and (notified or not settings.REDIS_URL), detail)
