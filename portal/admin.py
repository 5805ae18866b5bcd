from django.contrib import admin

from portal.models import APIKey, Membership, Team, Tenant


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
