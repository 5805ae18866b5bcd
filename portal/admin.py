from django.contrib import admin

from portal.models import (
    APIKey,
    AuditLogEntry,
    Invitation,
    Membership,
    Notification,
    Product,
    Subscription,
    Team,
    Tenant,
)


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "created_at"]
    prepopulated_fields = {"slug": ["name"]}


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["name", "tenant", "slug"]
    list_filter = ["tenant"]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "tenant", "team", "role"]


@admin.register(APIKey)
class APIKeyAdmin(admin.ModelAdmin):
    # Keys are created with `create_api_key` (the secret is shown once); the admin edits scope and state only.
    list_display = ["prefix", "name", "team", "is_revoked", "expires_at", "last_used_at"]
    list_filter = ["is_revoked", "team__tenant"]
    readonly_fields = ["prefix", "last_used_at", "created_at", "revoked_at"]
    exclude = ["secret_hash"]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["name", "tenant", "requires_approval", "is_published"]
    filter_horizontal = ["aliases"]


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    # Status changes go through the portal's services (audit log, notifications), not this form.
    list_display = ["team", "product", "status", "created_at", "decided_at"]
    list_filter = ["status"]
    readonly_fields = ["status", "decided_by", "decided_at", "reason", "requested_by"]


@admin.register(AuditLogEntry)
class AuditLogEntryAdmin(admin.ModelAdmin):
    list_display = ["created_at", "tenant", "actor_label", "action", "target_type", "target_id"]
    list_filter = ["action"]

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


admin.site.register(Notification)
admin.site.register(Invitation)

admin.site.site_header = "Tollway administration"
admin.site.site_title = "Tollway"
admin.site.index_title = "Platform administration"
