"""Optional OpenTelemetry traces: when OTEL_EXPORTER_OTLP_ENDPOINT is set, one span per /v1 request is sent
to that OTLP/HTTP collector in the background (BatchSpanProcessor).

The span is recorded from the closed UsageEvent, with the request's real start and end times, so tracing adds
nothing to the request path when off and one span build when on. It is a root span: the caller's traceparent
and per-attempt child spans are not recorded yet.
"""

import logging
import time

log = logging.getLogger(__name__)

_tracer = None
_provider = None


def start(*, endpoint: str, service_name: str, exporter=None) -> bool:
    """Turn tracing on; False (and a warning) when the OpenTelemetry SDK is not installed."""
    global _tracer, _provider
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning("OTEL_EXPORTER_OTLP_ENDPOINT is set but opentelemetry-sdk is not installed: no traces")
        return False
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces")
    _provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    _provider.add_span_processor(BatchSpanProcessor(exporter))
    _tracer = _provider.get_tracer("tollway.gateway")
    return True


def is_on() -> bool:
    return _tracer is not None


def record(event) -> None:
    if _tracer is None:
        return
    from opentelemetry.trace import SpanKind, Status, StatusCode

    # UsageEvent keeps a wall-clock start and a monotonic duration: the span gets both ends in wall time.
    start_ns = int(event.created_at * 1e9)
    if event.latency_ms is None:
        end_ns = time.time_ns()
    else:
        end_ns = start_ns + int(event.latency_ms * 1e6)
    span = _tracer.start_span(f"tollway {event.endpoint}", kind=SpanKind.SERVER, start_time=start_ns)
    principal = event.principal
    span.set_attributes(
        {
            "tollway.request_id": event.request_id,
            "tollway.tenant_id": principal.tenant_id,
            "tollway.team_id": principal.team_id,
            "tollway.alias": event.alias,
            "tollway.deployment": event.deployment,
            "tollway.provider": event.provider,
            "tollway.attempts": event.attempts,
            "tollway.stream": event.stream,
            "gen_ai.usage.input_tokens": event.prompt_tokens,
            "gen_ai.usage.output_tokens": event.completion_tokens,
            "http.response.status_code": event.status,
        }
    )
    if event.status >= 500 or event.error_type:
        span.set_status(Status(StatusCode.ERROR, event.error_type))
    span.end(end_time=end_ns)


def stop() -> None:
    """Send what is buffered (blocks up to the exporter's timeout: call it off the event loop)."""
    global _tracer, _provider
    if _provider is not None:
        _provider.shutdown()
    _tracer = _provider = None
