"""What each gateway process starts before serving /v1 and stops after the last request (ASGI lifespan)."""

import asyncio
import gc
import logging
import os
import secrets

from django.conf import settings

from billing import services as billing_services
from billing import usage_writer
from billing.ledger import admission, alerts
from billing.ledger.deployment_quota import DeploymentQuota
from billing.outbox import Outbox
from config import db_thread, embedded_beat
from routing.control_plane import feed, snapshot
from routing.control_plane.refresher import ControlPlane
from routing.engine.bandit import SharedBandit
from routing.engine.breaker import SharedBreakers
from routing.engine.latency import SharedLatency
from routing.engine.router import Engine
from routing.observability import readiness
from routing.providers import http
from routing.proxy import pipeline

log = logging.getLogger(__name__)


class Gateway:
    def __init__(self) -> None:
        self._control_plane: ControlPlane | None = None
        self._writer: usage_writer.UsageWriter | None = None
        self._engine_tasks: list[asyncio.Task] = []
        self._engine_redis = None

    async def start(self) -> None:
        http.open_client(transport=settings.TOLLWAY_HTTP_TRANSPORT)
        admission.install(admission.Ledger(redis_url=settings.REDIS_URL))
        readiness.register_check("limits", admission.readiness)
        self._control_plane = ControlPlane()
        await self._control_plane.start()
        await self._start_engine()
        readiness.register_check("change_feed", self._control_plane.readiness, is_required=False)
        recovered = await db_thread.run_in_db(
            billing_services.recover_usage_outbox, directory=settings.TOLLWAY_USAGE_OUTBOX_DIR
        )
        if recovered:
            log.warning("recovered %d usage records left by a process that stopped without flushing", recovered)
        self._writer = usage_writer.UsageWriter(
            outbox=Outbox(settings.TOLLWAY_USAGE_OUTBOX_DIR, memory_rows=settings.TOLLWAY_USAGE_MEMORY_ROWS),
            store=lambda rows: db_thread.run_in_db(billing_services.store_usage_rows, rows=rows),
            flush_interval_s=settings.TOLLWAY_USAGE_FLUSH_INTERVAL_S,
            batch_size=settings.TOLLWAY_USAGE_FLUSH_BATCH,
            retry_max_s=settings.TOLLWAY_USAGE_RETRY_MAX_S,
        )
        self._writer.start()
        usage_writer.install(self._writer)
        embedded_beat.start()  # aggregation, retention, reconcile when there is no broker
        # Long-lived startup objects never need collecting; freezing them shortens GC pauses (p99).
        gc.freeze()

    async def _start_engine(self) -> None:
        """A fresh engine per process; with Redis, breakers and latency averages are shared by every process."""
        quota = DeploymentQuota()
        engine = Engine(over_quota=quota.over, count_attempt=quota.count)
        pipeline.install_engine(engine)
        if not settings.REDIS_URL:
            return
        import redis.asyncio as redis

        self._engine_redis = redis.Redis.from_url(
            settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=5, health_check_interval=10
        )
        prefix = f"tollway:routing:{feed.deployment_id()}"
        process_id = f"{os.getpid()}x{secrets.token_hex(4)}"
        breakers = SharedBreakers(
            engine.breakers, redis_client=self._engine_redis, prefix=prefix, process_id=process_id
        )
        try:
            await asyncio.wait_for(breakers.load(), timeout=2)  # breakers already open elsewhere stay open here
        except Exception as exc:
            log.warning("routing: could not read shared breaker states (%s); starting with all closed", exc)
        latency = SharedLatency(engine.latency, redis_client=self._engine_redis, prefix=prefix, process_id=process_id)
        bandit = SharedBandit(engine.bandit, redis_client=self._engine_redis, prefix=prefix)
        loop = asyncio.get_running_loop()
        self._engine_tasks = [
            loop.create_task(bandit.run_forever(), name="shared-bandit"),
            loop.create_task(breakers.run_forever(), name="shared-breakers"),
            loop.create_task(latency.run_forever(), name="shared-latency"),
            loop.create_task(
                quota.run_forever(self._engine_redis, prefix, limited=_deployments_with_quotas), name="quotas"
            ),
        ]

    async def _stop_engine(self) -> None:
        for task in self._engine_tasks:
            task.cancel()
        if self._engine_tasks:
            await asyncio.wait(self._engine_tasks, timeout=2)
        self._engine_tasks = []
        if self._engine_redis is not None:
            try:
                async with asyncio.timeout(1):  # not wait_for: see the control plane's listener
                    await self._engine_redis.aclose()
            except Exception as exc:  # a connection already gone cannot be closed politely
                log.debug("routing: closing the Redis client: %s", exc)
            self._engine_redis = None

    async def stop(self) -> None:
        await asyncio.to_thread(embedded_beat.stop)
        await self._stop_engine()
        if self._control_plane is not None:
            await self._control_plane.stop()
            readiness.unregister_check("change_feed")
        # Settle what finished requests reserved before their records are flushed and the process exits.
        await admission.current().aclose()
        admission.install(None)
        await alerts.drain()
        if self._writer is not None:
            await self._writer.close()
            usage_writer.install(None)
        await http.close_client()
        await asyncio.get_running_loop().run_in_executor(None, db_thread.shutdown)


_quotas_of: tuple[object, set[str]] = (None, set())


def _deployments_with_quotas() -> set[str]:
    """The catalogue's deployments with a provider quota; read again only when the snapshot changes (it is
    asked four times a second, and a catalogue may have thousands of deployments)."""
    global _quotas_of
    current = snapshot.current()
    if _quotas_of[0] is not current.aliases:  # the same catalogue while only loaded_at moves
        limited = {
            t.deployment
            for targets in current.aliases.values()
            for t in targets
            if t.rpm_limit is not None or t.tpm_limit is not None
        }
        _quotas_of = (current.aliases, limited)
    return _quotas_of[1]
