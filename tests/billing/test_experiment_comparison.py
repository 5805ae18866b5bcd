"""The experiment comparison of an alias: each arm's requests, cost, latency, error rate and feedback over the
range, from records of two arms (and calls given no arm, an earlier experiment, another alias and another
tenant), seen through the dashboards' scope; another tenant's alias is a 404."""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.aggregation import HISTOGRAM_RELATIVE_ERROR, aggregate_pending
from billing.dashboards import experiments
from billing.dashboards.scope import filters_from
from billing.models import Feedback
from routing import services
from tests.billing.factories import UsageRecordFactory
from tests.factories import DeploymentFactory, make_alias
from tests.portal.test_console_world import build_world

pytestmark = pytest.mark.django_db

DAY = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=3)
EXPERIMENT = "llama-vs-mixtral"


@pytest.fixture(autouse=True)
def no_settle_delay(settings):
    settings.TOLLWAY_AGGREGATE_SETTLE_S = 0


def call(team, *, arm: str, experiment: str = EXPERIMENT, alias: str = "smart", minute: int = 0, score=None,
         **fields):  # fmt: skip
    record = UsageRecordFactory(
        tenant=team.tenant, team=team, tenant_name=team.tenant.name, team_name=team.name, alias=alias,
        deployment=arm or "cheap-llama", created_at=DAY + timedelta(hours=10, minutes=minute), strategy="priority",
        decision={"alias": alias, "strategy": "priority", "experiment": experiment, "arm": arm, "attempts": []},
        **fields,
    )  # fmt: skip
    if score is not None:
        Feedback.objects.create(usage=record, score=score)
    return record


def seed(world):
    """Acme's calls of two arms of `smart`, and the calls the comparison must leave out or keep apart."""
    cheap, mid = DeploymentFactory(name="cheap-llama"), DeploymentFactory(name="mid-mixtral")
    alias = make_alias("smart", cheap, mid)
    services.update_alias(
        alias=alias,
        changes={"routing": {"experiment": {"name": EXPERIMENT, "arms": {"cheap-llama": 70, "mid-mixtral": 30}}}},
        updated_by=world.users["platform_admin"],
    )
    world.chat.aliases.add(alias)
    team, other = world.team, world.other_team
    # cheap-llama: four calls (one failed), $0.001 each when answered; rated 1.0 and 0.5.
    call(team, arm="cheap-llama", minute=1, cost_usd=Decimal("0.0010000000"), latency_ms=100, score=1.0)
    call(other, arm="cheap-llama", minute=2, cost_usd=Decimal("0.0010000000"), latency_ms=200, score=0.5)
    call(team, arm="cheap-llama", minute=3, cost_usd=Decimal("0.0010000000"), latency_ms=300)
    call(team, arm="cheap-llama", minute=4, status=502, error_type="upstream_error", cost_usd=Decimal(0),
         latency_ms=400)  # fmt: skip
    # mid-mixtral: two dearer, slower calls; one rated 0.2.
    call(team, arm="mid-mixtral", minute=5, cost_usd=Decimal("0.0100000000"), latency_ms=1000, score=0.2)
    call(other, arm="mid-mixtral", minute=6, cost_usd=Decimal("0.0300000000"), latency_ms=3000)
    # A call the split gave no arm, and one of an earlier experiment of the same alias.
    call(team, arm="", minute=7, cost_usd=Decimal("0.0020000000"), latency_ms=150)
    call(team, arm="cheap-llama", experiment="first-try", minute=8, cost_usd=Decimal("0.0050000000"))
    # Never in Acme's comparison of `smart`: another alias's experiment, and another tenant's calls.
    call(team, arm="cheap-llama", alias="other-alias", minute=9, cost_usd=Decimal("9"), score=0.0)
    call(world.rival_team, arm="mid-mixtral", minute=10, cost_usd=Decimal("7"), latency_ms=5, score=0.9)
    aggregate_pending()
    alias.refresh_from_db()  # with the routing update_alias stored
    return alias


@pytest.fixture
def world():
    world = build_world()
    world.alias = seed(world)
    return world


def arms_of(compared, name: str) -> dict[str, experiments.Arm]:
    (experiment,) = [e for e in compared if e.name == name]
    return {arm.label: arm for arm in experiment.arms}


def test_each_arm_has_its_requests_cost_error_rate_latency_and_feedback(world):
    filters = experiments.bounded(filters_from(world.users["finance"], {}))

    compared = experiments.compare_arms(filters, alias=world.alias)

    assert [(e.name, e.is_current) for e in compared] == [(EXPERIMENT, True), ("first-try", False)]
    arms = arms_of(compared, EXPERIMENT)
    assert list(arms) == ["cheap-llama", "mid-mixtral", "(no arm)"]
    cheap, mid = arms["cheap-llama"], arms["mid-mixtral"]
    assert (cheap.share_percent, cheap.requests, cheap.errors, cheap.error_rate) == (70, 4, 1, 0.25)
    assert (cheap.cost_usd, cheap.cost_per_request) == (Decimal("0.003"), Decimal("0.0007500000"))
    assert (cheap.feedback_count, cheap.feedback_mean) == (2, 0.75)
    assert (mid.share_percent, mid.requests, mid.error_rate, mid.cost_usd) == (30, 2, 0.0, Decimal("0.04"))
    assert (mid.cost_per_request, mid.feedback_count, mid.feedback_mean) == (Decimal("0.02"), 1, 0.2)
    # Percentiles of 100/200/300/400 ms and of 1000/3000 ms, estimated from histograms.
    for arm, p50, p95 in ((cheap, 250, 385), (mid, 2000, 2900)):
        assert arm.latency_p50_ms == pytest.approx(p50, rel=HISTOGRAM_RELATIVE_ERROR)
        assert arm.latency_p95_ms == pytest.approx(p95, rel=HISTOGRAM_RELATIVE_ERROR)
    no_arm = arms["(no arm)"]
    assert (no_arm.share_percent, no_arm.requests, no_arm.feedback_count, no_arm.feedback_mean) == (None, 1, 0, None)
    assert arms_of(compared, "first-try")["cheap-llama"].cost_usd == Decimal("0.005")


def test_a_member_compares_only_their_teams_calls(world):
    filters = experiments.bounded(filters_from(world.users["member"], {}))

    arms = arms_of(experiments.compare_arms(filters, alias=world.alias), EXPERIMENT)

    # Checkout's calls: three of cheap-llama (one rated 1.0) and one of mid-mixtral (rated 0.2).
    assert [(a.requests, a.feedback_count, a.feedback_mean) for a in arms.values()] == [(3, 1, 1.0), (1, 1, 0.2),
                                                                                          (1, 0, None)]  # fmt: skip


def test_a_platform_admin_sees_every_tenants_calls(world):
    filters = experiments.bounded(filters_from(world.users["platform_admin"], {}))

    mid = arms_of(experiments.compare_arms(filters, alias=world.alias), EXPERIMENT)["mid-mixtral"]

    assert (mid.requests, mid.cost_usd, mid.feedback_count) == (3, Decimal("7.04"), 2)


def test_the_range_is_cut_to_the_comparisons_limit_and_says_so(world):
    filters = experiments.bounded(filters_from(world.users["finance"], {"from": "2026-01-01", "to": "2026-12-31"}))

    assert filters.until - filters.since == timedelta(days=experiments.MAX_RANGE_DAYS)
    assert any("at most 92 days" in problem for problem in filters.problems)


def cells(html: str, arm: str) -> dict[str, str]:
    """The arm's row as {data-testid: text}."""
    row = re.search(rf'<tr data-testid="arm-{arm}">(.*?)</tr>', html, re.S).group(1)
    return {name: re.sub(r"<[^>]+>", "", text).strip() for name, text in re.findall(
        r'data-testid="(arm-[a-z0-9-]+)"[^>]*>(.*?)</td>', row, re.S)}  # fmt: skip


def test_the_page_shows_both_arms_figures_to_finance(client, world):
    client.force_login(world.users["finance"])

    response = client.get(f"/console/dashboards/experiments/{world.alias.pk}/")

    assert response.status_code == 200
    html = response.content.decode()
    cheap, mid = cells(html, "cheap-llama"), cells(html, "mid-mixtral")
    assert cheap == {
        "arm-share": "70%", "arm-requests": "4", "arm-cost": "$0.003", "arm-cost-per-request": "$0.00075",
        "arm-latency-p50": cheap["arm-latency-p50"], "arm-latency-p95": cheap["arm-latency-p95"],
        "arm-error-rate": "25.0%", "arm-feedback-count": "2", "arm-feedback-mean": "0.75",
    }  # fmt: skip
    # Estimated from histograms: around 250 ms and 385 ms.
    assert 239 <= int(cheap["arm-latency-p50"].removesuffix(" ms")) <= 262
    assert 367 <= int(cheap["arm-latency-p95"].removesuffix(" ms")) <= 403
    assert (mid["arm-requests"], mid["arm-cost"], mid["arm-cost-per-request"]) == ("2", "$0.04", "$0.02")
    assert (mid["arm-error-rate"], mid["arm-feedback-count"], mid["arm-feedback-mean"]) == ("0.0%", "1", "0.20")
    assert re.fullmatch(r"[\d,]+ ms", mid["arm-latency-p50"])
    assert "first-try" in html and "$7" not in html


@pytest.mark.parametrize("role", ["finance", "member", "platform_admin"])
def test_the_catalogue_and_the_routing_page_link_to_the_comparison(client, world, role):
    client.force_login(world.users[role])
    link = f'href="/console/dashboards/experiments/{world.alias.pk}/"'

    assert link in client.get("/console/catalogue/").content.decode()
    if role == "platform_admin":
        assert link in client.get(f"/console/catalogue/aliases/{world.alias.pk}/routing/").content.decode()


def test_another_tenants_alias_is_a_404_like_a_missing_one(client, world):
    rival_alias = make_alias("rival-smart", DeploymentFactory(name="rival-llama"))
    world.rival_subscription.product.aliases.add(rival_alias)
    unlisted = make_alias("in-no-product", DeploymentFactory(name="lonely"))

    client.force_login(world.users["finance"])
    assert client.get(f"/console/dashboards/experiments/{rival_alias.pk}/").status_code == 404
    assert client.get(f"/console/dashboards/experiments/{unlisted.pk}/").status_code == 404
    assert client.get("/console/dashboards/experiments/999999/").status_code == 404
    # The other tenant's admin opens their own alias, and not Acme's.
    client.force_login(world.users["other_tenant_admin"])
    assert client.get(f"/console/dashboards/experiments/{rival_alias.pk}/").status_code == 200
    assert client.get(f"/console/dashboards/experiments/{world.alias.pk}/").status_code == 404
    # A platform admin opens any alias.
    client.force_login(world.users["platform_admin"])
    assert client.get(f"/console/dashboards/experiments/{unlisted.pk}/").status_code == 200


def test_signing_in_is_required(client, world):
    response = client.get(f"/console/dashboards/experiments/{world.alias.pk}/")

    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
