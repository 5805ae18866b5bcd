from django.contrib import admin

from billing.models import Budget, BudgetAlert, BudgetCounter, UsageRecord


@admin.register(UsageRecord)
class UsageRecordAdmin(admin.ModelAdmin):
    list_display = ["created_at", "request_id", "team_name", "key_prefix", "alias", "deployment", "status", "cost_usd"]
    list_filter = ["status", "stream", "estimated"]
    search_fields = ["request_id", "key_prefix", "alias"]

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Budget)
class BudgetAdmin(admin.ModelAdmin):
    list_display = ["id", "tenant", "scope", "target_id", "period", "limit_usd", "limit_tokens", "action", "is_active"]
    list_filter = ["scope", "period", "action", "is_active"]
    readonly_fields = ["created_by", "created_at", "updated_at"]


@admin.register(BudgetCounter)
class BudgetCounterAdmin(admin.ModelAdmin):
    # What enforcement uses while on the database (and the mirror reconciliation keeps while on Redis).
    list_display = ["budget", "period_start", "spent_usd", "reserved_usd", "spent_tokens", "reserved_tokens"]

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(BudgetAlert)
class BudgetAlertAdmin(admin.ModelAdmin):
    list_display = ["budget", "period_start", "threshold", "spent_usd", "created_at"]

    def has_change_permission(self, request, obj=None) -> bool:
        return False
