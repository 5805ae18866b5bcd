"""Reads behind the experiment comparison: for one alias, each arm of its A/B experiment (and of any earlier
experiment of the alias in the range) on cost, latency, error rate and feedback.

Requests, errors, cost and latency come from the aggregates (their `experiment` and `experiment_arm`
dimensions). Feedback arrives after its call's hour was aggregated, so it is read from billing.Feedback joined
to the raw records instead: bounded to the range (at most MAX_RANGE_DAYS), the alias and the user's scope, and
summed in the database (one row per arm comes back).
"""

from dataclasses import dataclass, field, replace
from datetime import timedelta
from decimal import Decimal

from django.db.models import Avg, Count, Q
from django.http import Http404

from billing.aggregation import DECISION_ARM, DECISION_EXPERIMENT, merge_histograms, percentile_from_histogram
from billing.dashboards.finance import aggregate_rows
from billing.dashboards.scope import Filters
from billing.models import UsageRecord
from portal import roles, selectors
from routing.catalogue.policies import routing_mapping
from routing.models import ModelAlias

# Feedback is read from raw records: a longer range would scan too many of them for one page.
MAX_RANGE_DAYS = 92
NO_ARM = "(no arm)"  # calls of the experiment the split gave no arm (arms under 100%, or the arm unusable)


@dataclass
class Arm:
    deployment: str  # "" for the calls that got no arm
    share_percent: int | None = None  # its share in the alias's current experiment; None if it is not in it
    requests: int = 0
    errors: int = 0
    cost_usd: Decimal = Decimal(0)
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    feedback_count: int = 0
    feedback_mean: float | None = None  # mean score, 0-1
    histograms: list = field(default_factory=list, repr=False)

    @property
    def label(self) -> str:
        return self.deployment or NO_ARM

    @property
    def cost_per_request(self) -> Decimal | None:
        return (self.cost_usd / self.requests).quantize(Decimal("1e-10")) if self.requests else None

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None


@dataclass
class Experiment:
    name: str
    is_current: bool
    arms: list[Arm]

    @property
    def requests(self) -> int:
        return sum(arm.requests for arm in self.arms)


def visible_alias(user, alias_id: int) -> ModelAlias:
    """An alias the user may compare: any for platform admins; for others, one of a product they can see (the
    platform's published products, their tenants'). Another tenant's alias is a 404, like a missing one."""
    aliases = ModelAlias.objects.prefetch_related("routes__deployment")
    if not roles.is_platform_admin(user):
        aliases = aliases.filter(products__in=selectors.visible_products(user=user).values("pk")).distinct()
    try:
        return aliases.get(pk=alias_id)
    except ModelAlias.DoesNotExist:
        raise Http404("No such model alias.") from None


def bounded(filters: Filters) -> Filters:
    """The filters for one alias's page: no model filter (the page is the alias's), and the range cut to its
    last MAX_RANGE_DAYS days, saying so when it was cut."""
    since, problems = filters.since, list(filters.problems)
    if filters.until - since > timedelta(days=MAX_RANGE_DAYS):
        since = filters.until - timedelta(days=MAX_RANGE_DAYS)
        problems.append(f"Experiments are compared over at most {MAX_RANGE_DAYS} days.")
    return replace(filters, since=since, alias="", problems=problems)


def current_experiment(alias: ModelAlias) -> dict | None:
    """The alias's `experiment:` as stored ({"name", "arms": {deployment: percent}}), None without one."""
    deployments = tuple(route.deployment.name for route in alias.routes.all())
    return routing_mapping(alias.routing, deployments=deployments).get("experiment")


def compare_arms(filters: Filters, *, alias: ModelAlias) -> list[Experiment]:
    """The alias's current experiment first (every arm, even one with no calls yet, in configured order, then
    its no-arm calls), then earlier experiments with calls in the range, busiest first."""
    current = current_experiment(alias)
    experiments: dict[str, dict[str, Arm]] = {}
    if current:
        experiments[current["name"]] = {
            deployment: Arm(deployment, share_percent=share) for deployment, share in current["arms"].items()
        }
    rows = aggregate_rows(filters).filter(alias=alias.name).exclude(experiment="")
    for row in rows.values("experiment", "experiment_arm", "requests", "errors", "cost_usd", "latency_histogram"):
        arm = _arm(experiments, row["experiment"], row["experiment_arm"])
        arm.requests += row["requests"]
        arm.errors += row["errors"]
        arm.cost_usd += row["cost_usd"]
        arm.histograms.append(row["latency_histogram"])
    for row in _feedback(filters, alias=alias.name):
        arm = _arm(experiments, row["experiment"], row["arm"] or "")
        arm.feedback_count, arm.feedback_mean = row["count"], row["mean"]
    result = []
    for name, arms in experiments.items():
        for arm in arms.values():
            latency = merge_histograms(arm.histograms)
            arm.latency_p50_ms = percentile_from_histogram(latency, 0.5)
            arm.latency_p95_ms = percentile_from_histogram(latency, 0.95)
        # Configured arms first, in their order, then arms met only in the records, then the calls without one.
        ordered = sorted(arms.values(), key=lambda arm: (arm.share_percent is None, not arm.deployment))
        result.append(Experiment(name=name, is_current=bool(current) and name == current["name"], arms=ordered))
    return sorted(result, key=lambda experiment: (not experiment.is_current, -experiment.requests, experiment.name))


def _arm(experiments: dict[str, dict[str, Arm]], experiment: str, deployment: str) -> Arm:
    arms = experiments.setdefault(experiment, {})
    return arms.setdefault(deployment, Arm(deployment))


def _feedback(filters: Filters, *, alias: str) -> list[dict]:
    rated = UsageRecord.objects.filter(
        filters.q(tenant_field="tenant_id", team_field="team_id"),
        Q(feedback__isnull=False),
        alias=alias,
        created_at__gte=filters.since,
        created_at__lt=filters.until,
    )
    return list(
        rated.annotate(experiment=DECISION_EXPERIMENT, arm=DECISION_ARM)
        .exclude(experiment="")
        .values("experiment", "arm")
        .annotate(count=Count("feedback"), mean=Avg("feedback__score"))
        .order_by()
    )
