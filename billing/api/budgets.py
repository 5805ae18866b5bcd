"""/api/v1/budgets/: budgets per tenant, team, key or subscription. Reading one shows the current period's
`spent_usd`/`spent_tokens` (the recorded spend of its scope over the whole period, spend from before the budget
existed included: the same figure as the console's budget card and chart) and `reserved_usd`/`reserved_tokens`
(what calls still running hold, from the ledger's counters; not part of spent). Tenant and platform admins
create and change budgets; finance and team members read them."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from billing import budgets, selectors
from billing.models import Budget
from portal import roles
from portal.api.inputs import BoundedModelSerializer, DecimalString
from portal.api.views import APIDefaults
from portal.errors import NotAllowed


class BudgetSerializer(BoundedModelSerializer):
    target = serializers.IntegerField(source="target_id", min_value=1, max_value=2**31 - 1)  # PositiveIntegerField
    limit_usd = DecimalString(positive=True, shortest=False, required=False, allow_null=True)
    thresholds = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=1000), required=False, max_length=20
    )
    spent_usd = serializers.SerializerMethodField()
    reserved_usd = serializers.SerializerMethodField()
    spent_tokens = serializers.SerializerMethodField()
    reserved_tokens = serializers.SerializerMethodField()
    period_start = serializers.SerializerMethodField()
    period_end = serializers.SerializerMethodField()

    class Meta:
        model = Budget
        fields = [
            "id",
            "tenant",
            "scope",
            "target",
            "period",
            "limit_usd",
            "limit_tokens",
            "thresholds",
            "action",
            "downgrade_alias",
            "webhook_url",
            "is_active",
            "period_start",
            "period_end",
            "spent_usd",
            "reserved_usd",
            "spent_tokens",
            "reserved_tokens",
            "created_at",
        ]
        read_only_fields = ["id", "tenant", "created_at"]
        extra_kwargs = {"limit_tokens": {"min_value": 1}}

    def _spend(self, budget: Budget) -> selectors.BudgetSpend:
        cache = self.context.setdefault("spend", {})
        if budget.pk not in cache:
            cache[budget.pk] = selectors.budget_spend(budget)
        return cache[budget.pk]

    def get_spent_usd(self, budget) -> str:
        return f"{self._spend(budget).spent_usd:.10f}"  # "0.0000000000", never "0" or "0E-10"

    def get_reserved_usd(self, budget) -> str:
        return f"{self._spend(budget).reserved_usd:.10f}"

    def get_spent_tokens(self, budget) -> int:
        return self._spend(budget).spent_tokens

    def get_reserved_tokens(self, budget) -> int:
        return self._spend(budget).reserved_tokens

    def get_period_start(self, budget) -> str:
        return self._spend(budget).period_start.isoformat()

    def get_period_end(self, budget) -> str:
        return self._spend(budget).period_end.isoformat()


class BudgetViewSet(APIDefaults, viewsets.ReadOnlyModelViewSet):
    serializer_class = BudgetSerializer

    def get_queryset(self):
        return selectors.visible_budgets(user=self.request.user).order_by("pk")

    def _save(self, body: BudgetSerializer, *, budget: Budget | None = None) -> Budget:
        values = dict(body.validated_data)
        scope = values.get("scope", budget.scope if budget else None)
        target_id = values.get("target_id", budget.target_id if budget else None)
        tenant = budgets.tenant_of_target(scope=scope, target_id=target_id)
        # A target of a tenant the caller cannot see is reported as missing, never as forbidden.
        if tenant is None or not roles.tenants_of(self.request.user).filter(pk=tenant.pk).exists():
            raise exceptions.ValidationError({"target": [f"there is no {scope} {target_id}"]})
        if not roles.is_tenant_admin(self.request.user, tenant):
            raise NotAllowed("only tenant and platform admins set budgets")
        if budget is not None and budget.tenant_id != tenant.pk:
            raise exceptions.ValidationError({"target": ["a budget cannot move to another tenant"]})
        try:
            if budget is None:
                return budgets.create_budget(tenant=tenant, created_by=self.request.user, **values)
            return budgets.update_budget(budget=budget, actor=self.request.user, **values)
        except budgets.BudgetError as error:
            raise exceptions.ValidationError({error.field: [error.message]}) from None

    def create(self, request: Request) -> Response:
        body = BudgetSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        budget = self._save(body)
        return Response(BudgetSerializer(budget).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=BudgetSerializer)
    def partial_update(self, request: Request, pk: int) -> Response:
        budget = get_object_or_404(self.get_queryset(), pk=pk)
        body = BudgetSerializer(budget, data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        budget = self._save(body, budget=budget)
        return Response(BudgetSerializer(budget).data)
