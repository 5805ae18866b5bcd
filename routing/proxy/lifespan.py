"""What each gateway process starts before serving /v1 and stops after the last request (ASGI lifespan)."""

import asyncio
import gc
import logging

from django.conf import settings

from billing import services as billing_services
from billing import usage_writer
from billing.ledger import admission, alerts
from billing.outbox import Outbox
from config import db_thread, embedded_beat
from routing.control_plane.refresher import ControlPlane
from routing.observability import readiness
from routing.providers import http

log = logging.getLogger(__name__)


class Gateway:
    def __init__(self) -> None:
        self._control_plane: ControlPlane | None = None
        self._writer: usage_writer.UsageWriter | None = None

    async def start(self) -> None:
        http.open_client(transport=settings.TOLLWAY_HTTP_TRANSPORT)
        admission.install(admission.Ledger(redis_url=settings.REDIS_URL))
        readiness.register_check("limits", admission.readiness)
        self._control_plane = ControlPlane()
        await self._control_plane.start()
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

    async def stop(self) -> None:
        await asyncio.to_thread(embedded_beat.stop)
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
