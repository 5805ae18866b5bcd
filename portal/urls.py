"""Console pages, under /console/."""

from django.urls import include, path

from portal.views import budgets, catalogue, home, inbox, keys, playground, subscriptions, teams, usage

app_name = "console"

urlpatterns = [
    path("", home.home, name="home"),
    path("teams/new/", teams.create_team, name="team-new"),
    path("teams/<int:team_id>/", teams.team_detail, name="team"),
    path("teams/<int:team_id>/invite/", teams.invite_member, name="team-invite"),
    path("teams/<int:team_id>/keys/new/", keys.new_key, name="key-new"),
    path("keys/<int:key_id>/revoke/", keys.revoke_key, name="key-revoke"),
    path("keys/<int:key_id>/rotate/", keys.rotate_key, name="key-rotate"),
    path("invitations/<str:token>/", teams.accept_invitation, name="invitation"),
    path("catalogue/", catalogue.catalogue, name="catalogue"),
    path("catalogue/aliases/<int:alias_id>/routing/", catalogue.alias_routing, name="alias-routing"),
    path("catalogue/deployments/<int:deployment_id>/routing/", catalogue.deployment_routing, name="deployment-routing"),
    path("products/new/", catalogue.new_product, name="product-new"),
    path("products/<int:product_id>/subscribe/", subscriptions.subscribe, name="subscribe"),
    path("subscriptions/", subscriptions.approvals, name="approvals"),
    path("subscriptions/<int:subscription_id>/", subscriptions.subscription_detail, name="subscription"),
    path("subscriptions/<int:subscription_id>/approve/", subscriptions.approve, name="subscription-approve"),
    path("subscriptions/<int:subscription_id>/reject/", subscriptions.reject, name="subscription-reject"),
    path("subscriptions/<int:subscription_id>/suspend/", subscriptions.suspend, name="subscription-suspend"),
    path("subscriptions/<int:subscription_id>/resume/", subscriptions.resume, name="subscription-resume"),
    path("subscriptions/<int:subscription_id>/quota/", subscriptions.change_quota, name="subscription-quota"),
    path("budgets/", budgets.budget_list, name="budgets"),
    path("budgets/new/", budgets.new_budget, name="budget-new"),
    path("budgets/<int:budget_id>/", budgets.edit_budget, name="budget"),
    path("budgets/<int:budget_id>/deactivate/", budgets.deactivate_budget, name="budget-deactivate"),
    path("playground/", playground.playground, name="playground"),
    path("prompts/", include("portal.prompts.urls")),
    path("usage/", usage.usage, name="usage"),
    path("inbox/", inbox.inbox, name="inbox"),
    path("inbox/read-all/", inbox.mark_all_read, name="inbox-read-all"),
    path("inbox/<int:notification_id>/read/", inbox.mark_read, name="inbox-read"),
]
