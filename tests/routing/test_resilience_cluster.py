"""Two gateway processes sharing a Redis keep answering while one of an alias's deployments is dead and another
rate limited, and stop sending the dead one more than a handful of calls: its breaker opens in both
processes. When it comes back, calls reach it again after the cool-down and its breaker closes in both. No
call is billed twice, nor for more than one attempt's tokens.

The alias lists the dead deployment first (priority), then the rate-limited one, then the healthy one. 2,000
calls from 16 callers go to the two processes in turn, paced at 100 a second so the dead phase spans two
cool-down windows: the first 1,000 while it is dead, the rest after it recovers.
"""

import math
import re
import time
from collections import Counter
from collections.abc import Callable
from decimal import Decimal

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from core.values import SKIP_REASONS
from portal import services
from routing.models import Deployment
from tests.control_plane.cluster import LONG_REFRESH_S, models_status, running_cluster
from tests.factories import DeploymentFactory, ProviderFactory, make_alias
from tests.gateway import wait_for_usage
from tests.redis_server import IS_INSTALLED
from tests.routing.connection_owners import IS_AVAILABLE as CAN_TELL_PROCESSES_APART
from tests.routing.connection_owners import ConnectionOwners
from tests.routing.paced_calls import PacedCalls
from tests.upstreams.openai_server import COMPLETION_TOKENS, PROMPT_TOKENS

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not IS_INSTALLED, reason="needs redis-server (for a Redis of the test's own)"),
]

ALIAS = "resilient"
DEAD, LIMITED, HEALTHY = "dead-gpt", "limited-gpt", "healthy-gpt"  # deployments; each sends its name upstream
RETRY_AFTER_S = 2
CONSECUTIVE_FAILURES, COOLDOWN_S, HALF_OPEN_PROBES = 5, 5, 1
MAX_ATTEMPTS = 3
ROUTING = {
    "strategy": "priority",
    "retry": {"max_attempts": MAX_ATTEMPTS},
    "breaker": {"consecutive_failures": CONSECUTIVE_FAILURES, "cooldown_s": COOLDOWN_S},
}
# USD per million tokens, input then output: apart, so a record's cost says which deployment's tokens it holds.
PRICES = {DEAD: ("2.00", "8.00"), LIMITED: ("1.00", "4.00"), HEALTHY: ("0.50", "1.50")}

CALLS, DEAD_PHASE_CALLS, CALLERS, CALLS_PER_S = 2000, 1000, 16, 100
MIN_ANSWERED_SHARE = 0.999
BODY = {"model": ALIAS, "messages": [{"role": "user", "content": "Hi"}]}

# tollway_breaker_state's values
CLOSED, HALF_OPEN, OPEN = 0, 1, 2
POLL_PAUSE_S = 0.1


def one_attempts_cost(deployment: str) -> Decimal:
    """What one answered attempt of the upstream's fixed usage costs at this deployment's prices."""
    input_price, output_price = (Decimal(price) for price in PRICES[deployment])
    return (PROMPT_TOKENS * input_price + COMPLETION_TOKENS * output_price) / 1_000_000


def breaker_state(url: str, deployment: str) -> float | None:
    """tollway_breaker_state{deployment=...} from this process's /metrics; None when it has no such series."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "tollway_breaker_state" and sample.labels.get("deployment") == deployment:
                return sample.value
    return None


def wait_until(is_true: Callable[[], bool], *, timeout_s: float, what: str) -> float:
    """Poll until `is_true()`; the monotonic time it first held. Fails naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not is_true():
        assert time.monotonic() < deadline, f"not within {timeout_s} s: {what}"
        time.sleep(POLL_PAUSE_S)
    return time.monotonic()


def skip_reasons(route: str) -> list[str]:
    """The reasons x-tollway-route lists: "priority; 2 skipped: breaker-open, retry-after" -> both."""
    found = re.search(r"\d+ skipped: ([^;]+)", route)
    return [reason.strip() for reason in found.group(1).split(",")] if found else []


@pytest.fixture
def resilient_alias(faulty_upstream):
    provider = ProviderFactory(name="faulty-openai", base_url=f"{faulty_upstream.url}/v1")
    deployments = [
        DeploymentFactory(
            name=name, provider=provider, model=name, input_per_1m=Decimal(prices[0]), output_per_1m=Decimal(prices[1])
        )
        for name, prices in PRICES.items()
    ]
    alias = make_alias(ALIAS, *deployments)
    alias.routing = ROUTING
    alias.save()
    return alias


def test_two_processes_answer_through_a_dead_and_a_rate_limited_deployment_and_breakers_open_and_close_in_both(
    tmp_path, team, faulty_upstream, resilient_alias
):
    upstream = faulty_upstream
    key = services.issue_api_key(team=team, name="resilience").secret
    upstream.fail(DEAD, status=503)
    upstream.rate_limit(LIMITED, retry_after_s=RETRY_AFTER_S)
    assert Deployment.objects.filter(name__in=PRICES).count() == 3

    with running_cluster(tmp_path, refresh_s=LONG_REFRESH_S) as cluster:
        urls = cluster.urls
        upstream.peer_of = ConnectionOwners(upstream.port, {g.url: g.process.pid for g in cluster.gateways})
        # The key is looked up once per process before the clock starts, so the first calls race on routing alone.
        assert [models_status(url, key) for url in urls] == [200, 200]
        started = time.monotonic()
        with PacedCalls(urls, key, body=BODY, calls=CALLS, callers=CALLERS, per_s=CALLS_PER_S) as load:
            open_in_both_at = wait_until(
                lambda: all(breaker_state(url, DEAD) == OPEN for url in urls),
                timeout_s=15,
                what=f"the breaker of {DEAD} reported open (2) by both processes",
            )
            load.wait_for(DEAD_PHASE_CALLS, timeout_s=60)
            # Still open in both, a cool-down window or more later: the half-open probes failed and re-opened it.
            wait_until(
                lambda: all(breaker_state(url, DEAD) == OPEN for url in urls),
                timeout_s=COOLDOWN_S,
                what=f"the breaker of {DEAD} open in both processes at the end of the dead phase",
            )
            recovered_at = time.monotonic()
            upstream.recover(DEAD)
            closed_in_both_at = wait_until(
                lambda: all(breaker_state(url, DEAD) == CLOSED for url in urls),
                timeout_s=COOLDOWN_S + 5,
                what=f"the breaker of {DEAD} closed (0) in both processes after it recovered",
            )
            load.wait_for(CALLS, timeout_s=60)
        answers = sorted(load.answers, key=lambda answer: answer.number)
        records = {record.request_id: record for record in wait_for_usage(CALLS, timeout_s=30)}

    dead_calls = [call for call in upstream.calls if call.model == DEAD]
    timeline = (
        f"open in both {open_in_both_at - started:.2f} s after the start, recovered at "
        f"{recovered_at - started:.2f} s, closed in both at {closed_in_both_at - started:.2f} s"
    )
    print(timeline)
    print(f"answers: {Counter(a.status for a in answers)}; by deployment: {Counter(a.deployment for a in answers)}")
    print(f"upstream: {Counter((c.model, c.status) for c in upstream.calls)}")

    # Answered: the dead and the rate-limited deployments cost the callers (almost) nothing.
    failed = [a for a in answers if a.status != 200]
    assert len(answers) == CALLS
    assert len(failed) <= CALLS * (1 - MIN_ANSWERED_SHARE), f"{len(failed)} not answered 200: {failed[:5]}"

    # The dead deployment got a handful of calls per process: before its breaker opened, at most
    # consecutive_failures of its own plus one from each other caller already in flight; after, the half-open
    # probes, one cool-down apart (each failed probe starts a new cool-down), plus one for a probe racing the
    # other process's publish.
    while_dead = [c for c in dead_calls if c.at < recovered_at]
    assert {c.status for c in while_dead} == {503}
    open_for_s = recovered_at - open_in_both_at
    bound_before_open = CONSECUTIVE_FAILURES + CALLERS - 1
    bound_while_open = HALF_OPEN_PROBES * (math.floor(open_for_s / COOLDOWN_S) + 1) + 1
    processes = list(urls) if CAN_TELL_PROCESSES_APART else [""]
    before_open = Counter(c.peer for c in while_dead if c.at < open_in_both_at)
    while_open = Counter(c.peer for c in while_dead if c.at >= open_in_both_at)
    print(
        f"calls to {DEAD} while dead, per process: before its breaker opened in both {dict(before_open)} "
        f"(bound {bound_before_open}), over the {open_for_s:.1f} s it was open {dict(while_open)} "
        f"(bound {bound_while_open})"
    )
    assert set(before_open) | set(while_open) <= set(processes)
    per_process = len(urls) // len(processes)  # both processes' calls in one count when they cannot be told apart
    for process in processes:
        assert before_open[process] <= per_process * bound_before_open, f"{process}: {dict(before_open)}"
        assert while_open[process] <= per_process * bound_while_open, f"{process}: {dict(while_open)}"

    # After it recovered, calls reached it again within a cool-down (and a probe's slack), from both processes.
    back = [c for c in dead_calls if c.at >= recovered_at and c.status == 200]
    assert back, f"no call reached {DEAD} after it recovered"
    assert back[0].at - recovered_at <= COOLDOWN_S + 1, f"first call back after {back[0].at - recovered_at:.2f} s"
    assert {c.peer for c in back} == set(processes)
    assert closed_in_both_at - recovered_at <= COOLDOWN_S + 2

    # Headers: the route and the attempt count say what happened.
    for answer in answers:
        if answer.status != 200:
            continue
        assert answer.route.startswith("priority"), answer
        assert set(skip_reasons(answer.route)) <= set(SKIP_REASONS), answer
        assert answer.attempts is not None and 1 <= answer.attempts <= MAX_ATTEMPTS, answer
        assert answer.deployment in PRICES, answer
    # The first calls tried the dead one (503), then the rate-limited one (429, unless the other process's
    # hold had reached this one already) and the healthy one; the first to get there had no hold to go by.
    firsts = [next(a for a in answers if a.url == url) for url in urls]
    assert all((a.status, a.deployment) == (200, HEALTHY) and a.attempts >= 2 for a in firsts), firsts
    assert max(a.attempts for a in firsts) == MAX_ATTEMPTS, firsts
    # While the breaker was open in both, calls skipped the dead deployment, reported as breaker-open (the odd
    # call was a half-open probe: it tried the dead deployment and came by its failure to a later one).
    while_open_answers = [a for a in answers if a.started >= open_in_both_at and a.ended < recovered_at]
    skipped_dead = [a for a in while_open_answers if "breaker-open" in skip_reasons(a.route)]
    assert all(a.deployment != DEAD for a in while_open_answers)
    assert len(while_open_answers) - len(skipped_dead) <= len(urls) * bound_while_open, Counter(
        a.route for a in while_open_answers
    )
    # Once closed in both, the dead deployment (first by priority) answers again at the first attempt.
    after_close = [a for a in answers if a.started > closed_in_both_at + 1]
    assert after_close and all((a.deployment, a.attempts) == (DEAD, 1) for a in after_close), Counter(
        (a.deployment, a.attempts, a.route) for a in after_close
    )
    assert all("breaker-open" not in a.route for a in after_close)

    # Billing: one record per call (matched by x-request-id), with what the headers said, and the cost of one
    # attempt's tokens at the answering deployment's prices.
    assert set(records) == {a.request_id for a in answers}
    for answer in answers:
        record = records[answer.request_id]
        assert (record.status, record.attempts) == (answer.status, answer.attempts), (record.__dict__, answer)
        if answer.status == 200:
            assert record.deployment == answer.deployment
            assert (record.prompt_tokens, record.completion_tokens) == (PROMPT_TOKENS, COMPLETION_TOKENS)
            assert record.cost_usd == one_attempts_cost(record.deployment), record.__dict__
