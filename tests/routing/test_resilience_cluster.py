"""Two gateway processes sharing a Redis keep answering while one of an alias's deployments is dead and another
rate limited, and stop sending the dead one more than a handful of calls: its breaker opens in both
processes. When it comes back, calls reach it again after the cool-down and its breaker closes in both. No
call is billed twice, nor for more than one attempt's tokens.

The alias lists the dead deployment first (priority), then the rate-limited one, then the healthy one. 2,000
calls from 16 callers go to the two processes in turn, paced at 100 a second so the dead phase spans two
cool-down windows: the first 1,000 while it is dead, the rest after it recovers.

Both processes meet the dead deployment at once there, so each may open its breaker on its own failures; the
second test shows the sharing itself: a breaker and a hold one process learnt are in force in the other before
it has called either.
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
from tests.control_plane.cluster import LONG_REFRESH_S, running_cluster
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
WARM_UP = "warm-up"  # an alias of the healthy deployment alone, to warm each process before the clock starts

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


def warm_up(url: str, key: str) -> int:
    body = {**BODY, "model": WARM_UP}
    return httpx.post(f"{url}/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"}).status_code


def wait_until(is_true: Callable[[], bool], *, timeout_s: float, what: str) -> float:
    """Poll until `is_true()`; the monotonic time it first held. Fails naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not is_true():
        assert time.monotonic() < deadline, f"not within {timeout_s} s: {what}"
        time.sleep(POLL_PAUSE_S)
    return time.monotonic()


def skipped_count(route: str) -> int:
    found = re.search(r"(\d+) skipped", route)
    return int(found.group(1)) if found else 0


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
    make_alias(WARM_UP, deployments[-1])
    return alias


def test_two_processes_answer_through_a_dead_and_a_rate_limited_deployment_and_breakers_open_and_close_in_both(
    tmp_path, team, faulty_upstream, resilient_alias
):
    upstream = faulty_upstream
    key = services.issue_api_key(team=team, name="resilience").secret
    upstream.fail(DEAD, status=503)
    upstream.rate_limit(LIMITED, retry_after_s=RETRY_AFTER_S)

    with running_cluster(tmp_path, refresh_s=LONG_REFRESH_S) as cluster:
        urls = cluster.urls
        upstream.peer_of = ConnectionOwners(upstream.port, {g.url: g.process.pid for g in cluster.gateways})
        # Each process looks the key up and opens its upstream connections before the clock starts: a cold
        # process queues the first calls, then lets them all at the dead deployment at once.
        assert [warm_up(url, key) for url in urls] == [200, 200]
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
        records = {record.request_id: record for record in wait_for_usage(CALLS, timeout_s=30, alias=ALIAS)}

    load_calls = [call for call in upstream.calls if call.at >= started]
    dead_calls = [call for call in load_calls if call.model == DEAD]
    timeline = (
        f"open in both {open_in_both_at - started:.2f} s after the start, recovered at "
        f"{recovered_at - started:.2f} s, closed in both at {closed_in_both_at - started:.2f} s"
    )
    print(timeline)
    print(f"answers: {Counter(a.status for a in answers)}; by deployment: {Counter(a.deployment for a in answers)}")
    print(f"upstream: {Counter((c.model, c.status) for c in load_calls)}")

    # Answered: the dead and the rate-limited deployments cost the callers (almost) nothing.
    failed = [a for a in answers if a.status != 200]
    assert len(answers) == CALLS
    assert len(failed) <= CALLS * (1 - MIN_ANSWERED_SHARE), f"{len(failed)} not answered 200: {failed[:5]}"

    # The dead deployment got a handful of calls per process. Until every call that started before its breaker
    # was seen open in both had ended (`settled_at`), at most consecutive_failures of the process's own plus one
    # from each other caller in flight (a busy gateway's request may reach the upstream well after its attempt
    # began), and a probe should that take a cool-down. After, only the half-open probes: one cool-down apart
    # (a failed probe starts a new cool-down) over the time it was open, plus one for a probe racing the other
    # process's publish.
    while_dead = [c for c in dead_calls if c.at < recovered_at]
    assert {c.status for c in while_dead} == {503}
    settled_at = max(a.ended for a in answers if a.started < open_in_both_at)
    open_for_s = recovered_at - open_in_both_at
    bound_before = CONSECUTIVE_FAILURES + CALLERS - 1 + HALF_OPEN_PROBES
    bound_after = HALF_OPEN_PROBES * (math.floor(open_for_s / COOLDOWN_S) + 1) + 1
    processes = list(urls) if CAN_TELL_PROCESSES_APART else [""]
    before = Counter(c.peer for c in while_dead if c.at < settled_at)
    after = Counter(c.peer for c in while_dead if c.at >= settled_at)
    print(
        f"calls to {DEAD} while dead, per process: until {settled_at - started:.2f} s {dict(before)} "
        f"(bound {bound_before}), from then to its recovery {dict(after)} (bound {bound_after})"
    )
    for process in processes:
        print(f"  {process or 'both'}: at {[round(c.at - started, 2) for c in while_dead if c.peer == process]} s")
    assert set(before) | set(after) <= set(processes)
    per_process = len(urls) // len(processes)  # both processes' calls in one count when they cannot be told apart
    for process in processes:
        assert before[process] <= per_process * bound_before, f"{process}: {dict(before)}"
        assert after[process] <= per_process * bound_after, f"{process}: {dict(after)}"

    # The rate-limited deployment was held for its Retry-After in both processes: asked again about once a hold
    # per process (a call or two in flight when the hold ends), after the first calls, which knew of no hold.
    limited_calls = Counter(c.peer for c in load_calls if c.model == LIMITED and c.at < recovered_at)
    bound_limited = CALLERS - 1 + 2 * (math.floor((recovered_at - started) / RETRY_AFTER_S) + 1)
    print(f"calls to {LIMITED} while {DEAD} was dead, per process: {dict(limited_calls)} (bound {bound_limited})")
    assert all(limited_calls[p] <= per_process * bound_limited for p in processes), limited_calls

    # After it recovered, calls reached it again within a cool-down (and a probe's slack), from both processes.
    back = [c for c in dead_calls if c.at >= recovered_at and c.status == 200]
    assert back, f"no call reached {DEAD} after it recovered"
    assert back[0].at - recovered_at <= COOLDOWN_S + 1, f"first call back after {back[0].at - recovered_at:.2f} s"
    assert {c.peer for c in back} == set(processes)
    assert closed_in_both_at - recovered_at <= COOLDOWN_S + 2

    # Headers: the route and the attempt count say what happened. Within one round each of the three is tried
    # or skipped once, and no round follows an answer: a call the healthy one answered went through all three.
    for answer in answers:
        if answer.status != 200:
            continue
        assert answer.route.startswith("priority"), answer
        assert set(skip_reasons(answer.route)) <= set(SKIP_REASONS), answer
        assert answer.attempts is not None and 1 <= answer.attempts <= MAX_ATTEMPTS, answer
        if answer.deployment == HEALTHY:
            assert answer.attempts + skipped_count(answer.route) == len(PRICES), answer
        else:
            # (The route may still list the rate-limited one as skipped: it was held, though never reached.)
            assert (answer.deployment, answer.attempts) == (DEAD, 1), answer
    assert any(a.attempts == MAX_ATTEMPTS for a in answers)  # the first calls knew of nothing to skip
    # x-tollway-attempts counts the upstream calls made, no more, no fewer.
    assert sum(a.attempts for a in answers if a.attempts) == len(load_calls)
    # While the breaker was open in both, calls skipped the dead deployment as breaker-open; the few that tried it
    # were the half-open probes, and came by its failure to a later one.
    while_open_answers = [a for a in answers if a.started >= open_in_both_at and a.ended < recovered_at]
    how_dead_was_passed = Counter()
    for answer in while_open_answers:
        decision = records[answer.request_id].decision
        skips = [skip["reason"] for skip in decision["skipped"] if skip["deployment"] == DEAD]
        tries = [attempt["status"] for attempt in decision["attempts"] if attempt["deployment"] == DEAD]
        how_dead_was_passed[(*skips, *tries)] += 1
    print(f"while open in both, {DEAD} was: {dict(how_dead_was_passed)}")
    assert set(how_dead_was_passed) <= {("breaker-open",), (503,)}, how_dead_was_passed
    assert how_dead_was_passed[(503,)] <= len(urls) * bound_after, how_dead_was_passed
    # Once closed in both, the dead deployment (first by priority) answers again at the first attempt.
    after_close = [a for a in answers if a.started > closed_in_both_at + 1]
    assert after_close and all((a.deployment, a.attempts) == (DEAD, 1) for a in after_close), Counter(
        (a.deployment, a.attempts, a.route) for a in after_close
    )
    assert upstream.count(LIMITED, since=after_close[0].started) == 0  # nothing came by it any more
    skipped_after_close = Counter(
        (skip["deployment"], skip["reason"]) for a in after_close for skip in records[a.request_id].decision["skipped"]
    )
    assert not any(deployment == DEAD for deployment, _ in skipped_after_close), skipped_after_close

    # Billing: one record per call (matched by x-request-id), with what the headers said, and the cost of one
    # attempt's tokens at the answering deployment's prices.
    # Each record's decision lists its attempts; exactly one of an answered call's was answered, the last.
    assert set(records) == {a.request_id for a in answers}
    for answer in answers:
        record = records[answer.request_id]
        assert (record.status, record.attempts) == (answer.status, answer.attempts), (record.__dict__, answer)
        tried = record.decision["attempts"]
        assert len(tried) == record.attempts, record.decision
        if answer.status == 200:
            assert record.deployment == answer.deployment == tried[-1]["deployment"]
            assert [attempt["status"] for attempt in tried].count(200) == 1 and tried[-1]["status"] == 200
            assert (record.prompt_tokens, record.completion_tokens) == (PROMPT_TOKENS, COMPLETION_TOKENS)
            assert record.cost_usd == one_attempts_cost(record.deployment), record.__dict__
    # And together the decisions tell what the upstream saw, attempt for attempt.
    recorded = Counter((a["deployment"], a["status"]) for r in records.values() for a in r.decision["attempts"])
    assert recorded == Counter((call.model, call.status) for call in load_calls)


def test_a_breaker_and_a_hold_one_process_learns_apply_in_the_other_before_it_calls_either(
    tmp_path, team, faulty_upstream, resilient_alias
):
    upstream = faulty_upstream
    key = services.issue_api_key(team=team, name="sharing").secret
    upstream.fail(DEAD, status=503)
    upstream.rate_limit(LIMITED, retry_after_s=60)  # outlasts the test: the hold cannot end on its own

    with running_cluster(tmp_path, refresh_s=LONG_REFRESH_S) as cluster:
        first, second = cluster.urls
        upstream.peer_of = ConnectionOwners(upstream.port, {g.url: g.process.pid for g in cluster.gateways})
        assert [warm_up(url, key) for url in cluster.urls] == [200, 200]
        # One at a time, to the first process only: each failure is counted before the next call starts.
        with PacedCalls([first], key, body=BODY, calls=CONSECUTIVE_FAILURES, callers=1, per_s=1000) as alone:
            alone.wait_for(CONSECUTIVE_FAILURES, timeout_s=30)
        opened_at = time.monotonic()
        assert breaker_state(first, DEAD) == OPEN
        seen_at = wait_until(
            lambda: breaker_state(second, DEAD) == OPEN,
            timeout_s=2,
            what=f"the second process reporting the breaker of {DEAD} open, having called nothing",
        )
        print(f"open in the second process {seen_at - opened_at:.3f} s after the first reported it")
        with PacedCalls([second], key, body=BODY, calls=1, callers=1, per_s=1) as after:
            after.wait_for(1, timeout_s=30)

    # The first process: the dead one failed consecutive_failures times, the rate-limited one was asked once.
    assert [(a.status, a.deployment, a.attempts) for a in alone.answers] == [(200, HEALTHY, 3)] + [
        (200, HEALTHY, 2)
    ] * (CONSECUTIVE_FAILURES - 1)
    assert upstream.count_by_peer(DEAD) == {first: CONSECUTIVE_FAILURES}
    assert upstream.count_by_peer(LIMITED) == {first: 1}
    # The second process skipped both on its first call of the alias: it had learnt of them through Redis.
    [answer] = after.answers
    assert (answer.status, answer.deployment, answer.attempts) == (200, HEALTHY, 1), answer
    assert skipped_count(answer.route) == 2, answer
