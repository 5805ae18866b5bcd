import openai
import pytest

from tests.gateway import wait_for_usage
from tests.observability.prometheus_text import scrape, total

pytestmark = pytest.mark.django_db(transaction=True)

MAIN = {"alias": "gpt-4o-mini", "deployment": "main-gpt-4o-mini", "provider": "openai-test"}
HI = [{"role": "user", "content": "Hi"}]


def client_for(gateway, api_key) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=api_key, max_retries=0)


def reported(samples, name: str) -> float:
    """The value of a metric that must be in the scrape: `total` reads 0 for a metric that is missing."""
    values = [value for sample_name, _, value in samples if sample_name == name]
    assert values, f"{name} is not in the scrape"
    return sum(values)


def delta(before, after, name: str, **labels: str) -> float:
    # The test process keeps one metrics directory for all its tests: compare with what was there before.
    return total(after, name, **labels) - total(before, name, **labels)


def test_requests_latencies_and_tokens_add_up_to_what_the_sdk_saw(gateway, api_key):
    client = client_for(gateway, api_key)
    before = scrape(gateway.url)

    completions = [client.chat.completions.create(model="gpt-4o-mini", messages=HI) for _ in range(3)]
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=HI, stream=True, stream_options={"include_usage": True}
    )
    streamed_usage = [chunk.usage for chunk in stream if chunk.usage][-1]
    wait_for_usage(4)
    after = scrape(gateway.url)

    route = {"endpoint": "chat.completions", **MAIN}
    assert delta(before, after, "tollway_requests_total", code="200", **route) == 4
    assert delta(before, after, "tollway_request_duration_seconds_count", **route) == 4
    assert delta(before, after, "tollway_request_duration_seconds_bucket", le="+Inf", **route) == 4
    assert delta(before, after, "tollway_time_to_first_byte_seconds_count", **route) == 4
    assert delta(before, after, "tollway_upstream_duration_seconds_count", **route) == 4
    assert delta(before, after, "tollway_request_duration_seconds_sum", **route) > 0
    prompt = sum(c.usage.prompt_tokens for c in completions) + streamed_usage.prompt_tokens
    completion = sum(c.usage.completion_tokens for c in completions) + streamed_usage.completion_tokens
    assert delta(before, after, "tollway_tokens_total", kind="prompt", **route) == prompt
    assert delta(before, after, "tollway_tokens_total", kind="completion", **route) == completion
    # 9 * 0.15 / 1M + 12 * 0.60 / 1M per plain completion, 9 * 0.15 / 1M + 5 * 0.60 / 1M for the stream
    assert delta(before, after, "tollway_cost_usd_total", **route) == pytest.approx(3 * 0.00000855 + 0.00000435)
    assert delta(before, after, "tollway_upstream_attempts_total", **route) == 4
    assert delta(before, after, "tollway_fallback_requests_total", **route) == 0


def test_errors_are_counted_by_type_and_fallbacks_by_request(gateway, api_key):
    client = client_for(gateway, api_key)
    before = scrape(gateway.url)

    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="bad-request", messages=HI)
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="always-500", messages=HI)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="no-such-model-7f3a", messages=HI)
    failover = client.chat.completions.with_raw_response.create(model="failover", messages=HI)
    wait_for_usage(4)
    after = scrape(gateway.url)

    assert delta(before, after, "tollway_errors_total", error_type="all_deployments_failed", code="502") == 1
    assert delta(before, after, "tollway_errors_total", alias="bad-request", code="400") == 1
    # A model name the catalogue does not know is one "unknown" series, whatever the caller typed.
    assert delta(before, after, "tollway_errors_total", alias="unknown", code="404") == 1
    assert not any("no-such-model-7f3a" in str(labels) for _, labels, _ in after)
    assert delta(before, after, "tollway_errors_total") == 3
    attempts = int(failover.headers["x-tollway-attempts"])
    assert attempts >= 2
    assert delta(before, after, "tollway_fallback_requests_total", alias="failover", deployment="main-gpt-4o-mini") == 1
    assert delta(before, after, "tollway_upstream_attempts_total", alias="failover") == attempts
    assert delta(before, after, "tollway_requests_total", alias="failover", code="200") == 1


def test_the_scrape_reports_the_worker_and_its_background_state(gateway, api_key):
    client_for(gateway, api_key).models.list()
    wait_for_usage(1)

    samples = scrape(gateway.url)

    assert reported(samples, "tollway_worker_processes") == 1
    assert reported(samples, "tollway_worker_resident_memory_bytes") > 10_000_000
    assert 0 <= reported(samples, "tollway_snapshot_age_seconds") < 60
    assert reported(samples, "tollway_usage_queue_rows") == 0  # the one record has been written
    assert total(samples, "tollway_usage_outbox_segments") >= 1  # this worker's open segment
    assert total(samples, "tollway_requests_total", endpoint="models", code="200") >= 1
