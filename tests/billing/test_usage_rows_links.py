"""A flush trusts its rows' links (tenant, team, subscription) and lets the foreign keys catch the rare one
deleted since the request: then the rows are stored again, that link emptied and its name kept."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing.models import UsageRecord
from billing.services import store_usage_rows
from portal import services
from portal.models import Subscription
from tests.billing.usage_writer_doubles import usage_event
from tests.factories import TeamFactory
from tests.portal.factories import ProductFactory

pytestmark = pytest.mark.django_db(transaction=True)


def row_for(key, request_id: str, *, subscription=None) -> dict:
    row = usage_event(request_id).to_row()
    team = key.team
    return {
        **row,
        "api_key_id": key.pk,
        "team_id": team.pk,
        "tenant_id": team.tenant_id,
        "team_name": team.slug,
        "subscription_id": subscription.pk if subscription else None,
    }


def test_a_flush_with_live_links_reads_no_team_tenant_or_subscription():
    team = TeamFactory()
    key = services.issue_api_key(team=team, name="k").api_key
    subscription = Subscription.objects.create(team=team, product=ProductFactory(), purpose="p", status="active")
    with CaptureQueriesContext(connection) as queries:
        assert store_usage_rows(rows=[row_for(key, "req_live", subscription=subscription)]) == 1
    read = " ".join(q["sql"] for q in queries.captured_queries if q["sql"].lstrip().upper().startswith("SELECT"))
    assert "portal_team" not in read and "portal_tenant" not in read and "portal_subscription" not in read
    record = UsageRecord.objects.get(request_id="req_live")
    assert (record.team_id, record.tenant_id, record.subscription_id) == (team.pk, team.tenant_id, subscription.pk)


def test_a_link_deleted_since_the_request_is_emptied_and_the_rest_of_the_flush_kept():
    gone_team, kept_team = TeamFactory(), TeamFactory()
    gone_key = services.issue_api_key(team=gone_team, name="gone").api_key
    kept_key = services.issue_api_key(team=kept_team, name="kept").api_key
    subscription = Subscription.objects.create(team=kept_team, product=ProductFactory(), purpose="p", status="active")
    rows = [row_for(gone_key, "req_gone"), row_for(kept_key, "req_kept", subscription=subscription)]
    gone_team.delete()  # its keys go with it
    subscription_id = subscription.pk
    subscription.delete()

    assert store_usage_rows(rows=rows) == 2
    gone = UsageRecord.objects.get(request_id="req_gone")
    assert (gone.team_id, gone.api_key_id, gone.team_name) == (None, None, gone_team.slug)
    assert gone.tenant_id == gone_team.tenant_id  # the tenant is still there
    kept = UsageRecord.objects.get(request_id="req_kept")
    assert (kept.team_id, kept.api_key_id, kept.subscription_id) == (kept_team.pk, kept_key.pk, None)
    assert subscription_id is not None
    # Stored once each, however the flush went.
    assert UsageRecord.objects.count() == 2
