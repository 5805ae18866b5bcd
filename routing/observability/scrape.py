"""What one scrape of /metrics returns: every live and archived worker's values summed, plus what is read at
scrape time (usage outbox backlog, snapshot age). Reads files: call `render` off the event loop."""

import platform
import time
from pathlib import Path

from django.conf import settings
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

from routing.observability import node_files

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class NodeCollector:
    def __init__(self, *, metrics_dir: Path, outbox_dir: Path) -> None:
        self.metrics_dir, self.outbox_dir = metrics_dir, outbox_dir

    def collect(self):
        oldest_snapshot = None
        for metric in MultiProcessCollector.merge(sorted(map(str, self.metrics_dir.glob("*.db")))):
            if metric.name == "tollway_snapshot_loaded_timestamp_seconds" and metric.samples:
                oldest_snapshot = min(sample.value for sample in metric.samples)
            yield metric
        if oldest_snapshot:
            yield GaugeMetricFamily(
                "tollway_snapshot_age_seconds",
                "Age of the oldest catalogue/key snapshot a live worker serves (refreshed every few seconds).",
                value=max(0.0, time.time() - oldest_snapshot),
            )
        segments = bytes_pending = 0
        for segment in self.outbox_dir.glob("*.jsonl") if self.outbox_dir.is_dir() else ():
            try:
                bytes_pending += segment.stat().st_size
            except FileNotFoundError:
                continue  # retired while we looked
            segments += 1
        yield GaugeMetricFamily(
            "tollway_usage_outbox_segments", "Usage outbox files on this node (live and orphaned).", value=segments
        )
        yield GaugeMetricFamily(
            "tollway_usage_outbox_bytes", "Usage rows on disk not yet stored in the database.", value=bytes_pending
        )
        info = GaugeMetricFamily("tollway_build_info", "Gateway runtime.", labels=["python"])
        info.add_metric([platform.python_version()], 1)
        yield info


def render() -> bytes:
    directory = settings.TOLLWAY_METRICS_DIR
    registry = CollectorRegistry(auto_describe=False)
    registry.register(NodeCollector(metrics_dir=directory, outbox_dir=settings.TOLLWAY_USAGE_OUTBOX_DIR))
    with node_files.directory_lock(directory):
        node_files.sweep(directory)
        return generate_latest(registry)
