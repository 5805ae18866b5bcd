"""N requests of mixed outcomes leave exactly N usage records with exact tokens and cost, across processes,
through a graceful stop (SIGTERM) and through a hard kill (SIGKILL)."""

import asyncio
import io
import signal
import socket
import threading
import time
from decimal import Decimal

import httpx
import pytest
from django.core.management import call_command

from billing.models import UsageRecord
from portal import services
from tests.factories import DeploymentFactory, ProviderFactory, TeamFactory, make_alias
from tests.gateway import wait_for_usage
from tests.gateway_process import GatewayProcess
from tests.proxy.test_streaming_passthrough import GatedUpstream
from tests.upstreams.server import LoopbackServer

pytestmark = pytest.mark.django_db(transaction=True)

OK = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}
# (body, expected status, prompt tokens, completion tokens) per kind of request
MIX = [
    (OK, 200, 9, 12),
    ({**OK, "model": "failover"}, 200, 9, 12),
    ({**OK, "stream": True}, 200, 9, 5),
    ({**OK, "model": "always-500"}, 502, 0, 0),
    ({**OK, "model": "bad-request"}, 400, 0, 0),
    ({**OK, "model": "unknown"}, 404, 0, 0),
    ({"model": "gpt-4o-mini", "messages": "not a list"}, 400, 0, 0),
]
PRICE_IN, PRICE_OUT = Decimal("0.15"), Decimal("0.60")


async def fire(url: str, key: str, count: int) -> list[int]:
    limits = httpx.Limits(max_connections=32)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:

        async def one(i: int) -> int:
            body = MIX[i % len(MIX)][0]
            response = await client.post("/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"})
            await response.aread()
            return response.status_code

        return await asyncio.gather(*(one(i) for i in range(count)))


def expected_totals(count: int) -> tuple[int, int, Decimal]:
    prompt = sum(MIX[i % len(MIX)][2] for i in range(count))
    completion = sum(MIX[i % len(MIX)][3] for i in range(count))
    return prompt, completion, (prompt * PRICE_IN + completion * PRICE_OUT) / 1_000_000


def assert_exact_records(count: int, statuses: list[int]) -> None:
    # A deployment that always fails answers 502 until its breaker opens, then 503 (deployments_unavailable).
    expected = [MIX[i % len(MIX)][1] for i in range(count)]
    assert [503 if e == 502 and s == 503 else e for e, s in zip(expected, statuses, strict=True)] == statuses
    records = list(UsageRecord.objects.all())
    assert len(records) == count
    assert len({r.request_id for r in records}) == count
    prompt, completion, cost = expected_totals(count)
    assert sum(r.prompt_tokens for r in records) == prompt
    assert sum(r.completion_tokens for r in records) == completion
    assert sum((r.cost_usd for r in records), Decimal(0)) == cost
    assert sorted(r.status for r in records) == sorted(statuses)


def test_n_concurrent_mixed_requests_on_two_processes_leave_exactly_n_records(catalogue, api_key, tmp_path):
    with GatewayProcess(workers=2, outbox_dir=tmp_path / "outbox") as gateway:
        statuses = asyncio.run(fire(gateway.url, api_key, 210))
        wait_for_usage(210)
        assert_exact_records(210, statuses)


def test_a_sigterm_right_after_a_burst_loses_no_record(catalogue, api_key, tmp_path):
    # A flush interval far longer than the test: only the shutdown drain can store these records.
    env = {"TOLLWAY_USAGE_FLUSH_INTERVAL_S": "600", "TOLLWAY_USAGE_FLUSH_BATCH": "100000"}
    with GatewayProcess(workers=2, env=env, outbox_dir=tmp_path / "outbox") as gateway:
        statuses = asyncio.run(fire(gateway.url, api_key, 140))
        assert UsageRecord.objects.count() == 0
        assert gateway.terminate() == 0
    assert_exact_records(140, statuses)
    assert not list((tmp_path / "outbox").glob("*.jsonl"))


def test_a_sigkill_loses_no_record_that_was_answered(catalogue, api_key, tmp_path, settings):
    env = {"TOLLWAY_USAGE_FLUSH_INTERVAL_S": "600", "TOLLWAY_USAGE_FLUSH_BATCH": "100000"}
    outbox = tmp_path / "outbox"
    with GatewayProcess(workers=2, env=env, outbox_dir=outbox) as gateway:
        statuses = asyncio.run(fire(gateway.url, api_key, 70))
        gateway.kill()
    assert UsageRecord.objects.count() == 0
    assert list(outbox.glob("*.jsonl"))

    settings.TOLLWAY_USAGE_OUTBOX_DIR = outbox
    out = io.StringIO()
    call_command("recover_usage_outbox", stdout=out)

    assert out.getvalue().strip() == "recovered 70 usage records"

    assert_exact_records(70, statuses)
    assert not list(outbox.glob("*.jsonl"))


def test_a_new_gateway_process_recovers_what_a_killed_one_left(catalogue, api_key, tmp_path):
    env = {"TOLLWAY_USAGE_FLUSH_INTERVAL_S": "600", "TOLLWAY_USAGE_FLUSH_BATCH": "100000"}
    outbox = tmp_path / "outbox"
    with GatewayProcess(workers=1, env=env, outbox_dir=outbox) as gateway:
        statuses = asyncio.run(fire(gateway.url, api_key, 14))
        gateway.kill()
    with GatewayProcess(workers=1, outbox_dir=outbox):
        records = wait_for_usage(14)
    assert len(records) == 14
    assert_exact_records(14, statuses)


def test_a_sigterm_lets_a_stream_in_flight_finish_and_records_it(transactional_db, tmp_path):
    upstream = GatedUpstream()
    with LoopbackServer(upstream) as server:
        provider = ProviderFactory(name="gated", base_url=f"{server.url}/v1", timeout_s=30)
        make_alias("gated", DeploymentFactory(name="gated", provider=provider))
        key = services.issue_api_key(team=TeamFactory()).secret
        with GatewayProcess(workers=1, outbox_dir=tmp_path / "outbox") as gateway:
            lines, first_seen = [], threading.Event()

            def read_stream():
                body = {"model": "gated", "messages": [{"role": "user", "content": "Hi"}], "stream": True}
                with httpx.stream(
                    "POST",
                    f"{gateway.url}/v1/chat/completions",
                    json=body,
                    timeout=30,
                    headers={"authorization": f"Bearer {key}"},
                ) as response:
                    for line in response.iter_lines():
                        if line.startswith("data:"):
                            lines.append(line)
                            first_seen.set()

            reader = threading.Thread(target=read_stream)
            reader.start()
            assert first_seen.wait(timeout=10)
            gateway.process.send_signal(signal.SIGTERM)
            # Once uvicorn has closed its listening socket the gateway is shutting down, with the stream still open.
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                with socket.socket() as probe:
                    if probe.connect_ex(("127.0.0.1", gateway.port)) != 0:
                        break
                time.sleep(0.05)
            assert gateway.process.poll() is None
            upstream.gate.set()
            reader.join(timeout=10)
            # uvicorn re-raises the SIGTERM once its graceful shutdown is done, so -15 is a clean exit here.
            assert gateway.process.wait(timeout=30) in (0, -signal.SIGTERM)

    assert lines[-1] == "data: [DONE]" and any("second" in line for line in lines)
    [record] = wait_for_usage(1)
    assert (record.status, record.prompt_tokens, record.completion_tokens, record.stream) == (200, 3, 2, True)


def test_a_stream_cut_by_a_sigkill_after_its_first_chunk_is_recorded_once_as_interrupted(
    transactional_db, tmp_path, settings
):
    upstream = GatedUpstream()
    outbox = tmp_path / "outbox"
    with LoopbackServer(upstream) as server:
        provider = ProviderFactory(name="gated", base_url=f"{server.url}/v1", timeout_s=30)
        make_alias("gated", DeploymentFactory(name="gated", provider=provider))
        key = services.issue_api_key(team=TeamFactory()).secret
        with GatewayProcess(workers=1, outbox_dir=outbox) as gateway:
            body = {"model": "gated", "messages": [{"role": "user", "content": "Hi"}], "stream": True}
            headers = {"authorization": f"Bearer {key}"}
            with httpx.stream(
                "POST", f"{gateway.url}/v1/chat/completions", json=body, timeout=30, headers=headers
            ) as response:
                request_id = response.headers["x-request-id"]
                # Hold the iterator: a throwaway one is finalised at once, and httpcore closes the connection
                # when its stream is finalised, so the gateway would see a client leave before the kill.
                lines = response.iter_lines()
                first = next(line for line in lines if line.startswith("data:"))
                time.sleep(0.3)  # ample time to record a disconnect, were there one
                gateway.kill()
        upstream.gate.set()

    assert "first" in first
    settings.TOLLWAY_USAGE_OUTBOX_DIR = outbox
    out = io.StringIO()
    call_command("recover_usage_outbox", stdout=out)
    assert out.getvalue().strip() == "recovered 1 usage records"
    [record] = UsageRecord.objects.all()
    assert (record.request_id, record.status, record.error_type) == (request_id, 200, "gateway_interrupted")
    assert (record.stream, record.estimated, record.prompt_tokens > 0) == (True, True, True)
