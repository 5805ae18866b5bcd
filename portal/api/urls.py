"""REST API for automation, under /api/v1/. Every path works with and without its trailing slash; any other path
answers a JSON 404."""

from django.urls import include, re_path
from drf_spectacular.views import SpectacularAPIView

from billing.api.budgets import BudgetViewSet
from billing.api.usage_summary import UsageSummaryView
from portal.api import fallbacks, views
from portal.api.auth import TokenView
from portal.api.docs import DocsView
from portal.api.routes import CHANGEABLE_DETAIL, ID, collection, endpoint
from portal.prompts.api import views as prompts
from routing.api.explain import ExplainView

TEAM = r"teams/(?P<team_id>[0-9]+)"

urlpatterns = [
    endpoint("auth/token", TokenView.as_view(), "api-token"),
    endpoint("schema", SpectacularAPIView.as_view(), "api-schema"),
    endpoint("docs", DocsView.as_view(), "api-docs"),
    *collection("tenants", views.TenantViewSet, "tenant"),
    *collection("teams", views.TeamViewSet, "team", detail=CHANGEABLE_DETAIL),
    endpoint(rf"{TEAM}/members", views.TeamMembersView.as_view(), "team-members"),
    endpoint(rf"{TEAM}/members/invitations", views.TeamInvitationsView.as_view(), "team-invitations"),
    endpoint("invitations/accept", views.AcceptInvitationView.as_view(), "invitation-accept"),
    *collection("products", views.ProductViewSet, "product"),
    *collection("subscriptions", views.SubscriptionViewSet, "subscription", detail=CHANGEABLE_DETAIL),
    endpoint(rf"subscriptions/{ID}/approve", views.ApproveSubscriptionView.as_view(), "subscription-approve"),
    endpoint(rf"subscriptions/{ID}/reject", views.RejectSubscriptionView.as_view(), "subscription-reject"),
    endpoint(rf"subscriptions/{ID}/suspend", views.SuspendSubscriptionView.as_view(), "subscription-suspend"),
    endpoint(rf"subscriptions/{ID}/resume", views.ResumeSubscriptionView.as_view(), "subscription-resume"),
    *collection("keys", views.APIKeyViewSet, "key"),
    endpoint(rf"keys/{ID}/revoke", views.RevokeAPIKeyView.as_view(), "key-revoke"),
    endpoint(rf"keys/{ID}/rotate", views.RotateAPIKeyView.as_view(), "key-rotate"),
    *collection("audit-log", views.AuditLogViewSet, "audit-log"),
    re_path(r"^catalogue/", include("routing.api.urls")),
    endpoint("routing/explain", ExplainView.as_view(), "routing-explain"),
    endpoint("usage/summary", UsageSummaryView.as_view(), "usage-summary"),
    *collection("budgets", BudgetViewSet, "budget", detail=CHANGEABLE_DETAIL),
    *collection("prompts", prompts.PromptViewSet, "prompt", detail=CHANGEABLE_DETAIL),
    endpoint(rf"prompts/{ID}/versions", prompts.PromptVersionsView.as_view(), "prompt-versions"),
    endpoint(rf"prompts/{ID}/versions/(?P<number>[0-9]+)", prompts.PromptVersionView.as_view(), "prompt-version"),
    endpoint(rf"prompts/{ID}/publish", prompts.PublishPromptView.as_view(), "prompt-publish"),
    endpoint(rf"prompts/{ID}/rollback", prompts.RollbackPromptView.as_view(), "prompt-rollback"),
    endpoint(rf"prompts/{ID}/render", prompts.RenderPromptView.as_view(), "prompt-render"),
    # Last: any other path under /api/v1/ answers a JSON 404, never Django's HTML page.
    re_path(r"^(?P<path>.*)$", fallbacks.unknown_endpoint),
]
