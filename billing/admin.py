from django.contrib import admin

from billing.models import UsageRecord


@admin.register(UsageRecord)
class UsageRecordAdmin(admin.ModelAdmin):
    list_display = ["created_at", "request_id", "team_name", "key_prefix", "alias", "deployment", "status", "cost_usd"]
    list_filter = ["status", "stream", "estimated"]
    search_fields = ["request_id", "key_prefix", "alias"]

    def has_change_permission(self, request, obj=None) -> bool:
        return False
