import openai
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from routing.observability import tracing
from tests.gateway import wait_for_usage

pytestmark = pytest.mark.django_db(transaction=True)


def test_each_request_becomes_one_span_with_its_route_and_tokens(gateway, api_key):
    exporter = InMemorySpanExporter()
    assert tracing.start(endpoint="http://collector.invalid:4318", service_name="tollway-test", exporter=exporter)
    try:
        client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=api_key, max_retries=0)
        ok = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}]
        )
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="always-500", messages=[{"role": "user", "content": "Hi"}])
        wait_for_usage(2)
    finally:
        tracing.stop()  # flushes the batch processor

    first, failed = exporter.get_finished_spans()
    assert first.name == "tollway chat.completions"
    assert first.resource.attributes["service.name"] == "tollway-test"
    assert first.attributes["tollway.request_id"] == ok.headers["x-request-id"]
    assert first.attributes["tollway.deployment"] == "main-gpt-4o-mini"
    assert first.attributes["gen_ai.usage.output_tokens"] == 12
    assert first.end_time > first.start_time
    assert failed.status.status_code.name == "ERROR"
    assert failed.attributes["http.response.status_code"] == 502
