"""Operations: Prometheus metrics for the whole node (metrics.py, node_files.py, scrape.py), liveness and
readiness probes (readiness.py, endpoints.py), JSON and access logs (logs.py), optional traces (tracing.py).
config/asgi.py serves the endpoints and calls lifespan.start/stop."""
