"""Responses calls show under their own endpoint: a /v1/responses call and a chat completion of one team roll up
to one row each in the usage summary's group_by=endpoint and in the finance dashboard's table and CSV, with
the tokens the SDK was told."""

import csv
import io

import openai
import pytest

from billing.aggregation import aggregate_pending
from portal import services
from portal.models import Membership
from tests.factories import TeamFactory
from tests.gateway import start_gateway, wait_for_usage
from tests.portal.factories import MembershipFactory, token_client

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def calls(both_kinds, settings):
    settings.TOLLWAY_AGGREGATE_SETTLE_S = 0
    team = TeamFactory()
    key = services.issue_api_key(team=team).secret
    with start_gateway() as gateway:
        sdk = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0)
        answered = sdk.responses.create(model="chat-openai", input="Hi")
        with sdk.responses.stream(model="chat-anthropic", input="Hi") as stream:
            streamed = stream.get_final_response()
        chatted = sdk.chat.completions.create(model="chat-openai", messages=[{"role": "user", "content": "Hi"}])
    wait_for_usage(3)
    aggregate_pending()
    admin = MembershipFactory(team=None, tenant=team.tenant, role=Membership.Role.TENANT_ADMIN).user
    return admin, (answered, streamed), chatted


def test_the_usage_summary_groups_responses_calls_under_their_endpoint(calls):
    admin, responses, chatted = calls

    body = token_client(admin).get("/api/v1/usage/summary", {"group_by": "endpoint"}).json()

    assert body["columns"][0] == "endpoint"
    rows = {row["endpoint"]: (row["requests"], row["prompt_tokens"], row["completion_tokens"]) for row in body["rows"]}
    assert rows == {
        "responses": (
            2,
            sum(r.usage.input_tokens for r in responses),
            sum(r.usage.output_tokens for r in responses),
        ),
        "chat.completions": (1, chatted.usage.prompt_tokens, chatted.usage.completion_tokens),
    }


def test_the_finance_dashboard_shows_usage_by_endpoint(client, calls):
    admin, responses, _ = calls
    client.force_login(admin)

    page = client.get("/console/dashboards/").content.decode()
    exported = client.get("/console/dashboards/csv/endpoints/").content.decode()

    assert 'data-testid="table-endpoints"' in page
    assert 'data-testid="endpoint-responses"' in page and 'data-testid="endpoint-chat.completions"' in page
    rows = {row[0]: row for row in csv.reader(io.StringIO(exported))}
    assert rows["Endpoint"][:4] == ["Endpoint", "Requests", "Input tokens", "Output tokens"]
    assert rows["responses"][1:3] == ["2", str(sum(r.usage.input_tokens for r in responses))]
    assert rows["chat.completions"][1] == "1"
