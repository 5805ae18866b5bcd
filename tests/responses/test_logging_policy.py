"""A team whose logging policy stores no bodies, through the openai SDK: its responses are not kept and say
`store: false`, previous_response_id is a 400 naming the policy, its ids answer 404; and a change of policy
reaches a running gateway through the change feed."""

import time

import openai
import pytest

from portal import services
from portal.models import APIKey, Membership
from routing.models import StoredResponse
from routing.proxy import responses_store
from tests.factories import TeamFactory
from tests.gateway import start_gateway, wait_for_usage
from tests.portal.factories import MembershipFactory
from tests.responses.conftest import WEATHER_TOOL
from tests.responses.test_native_passthrough import native  # noqa: F401 (the fixture)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("tasks_inline")]


def client(url: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)


def set_policy(team, *, stores_bodies: bool) -> None:
    owner = MembershipFactory(team=team, role=Membership.Role.TEAM_OWNER).user
    services.set_team_logging_policy(team=team, changed_by=owner, stores_bodies=stores_bodies)


def test_a_team_that_stores_no_bodies_keeps_no_response_and_refuses_previous_response_id(both_kinds):
    team = TeamFactory()
    set_policy(team, stores_bodies=False)
    key = services.issue_api_key(team=team).secret
    with start_gateway() as gateway:
        sdk = client(gateway.url, key)
        answered = sdk.responses.create(model="chat-openai", input="Hi")
        asked_to_store = sdk.responses.create(model="chat-anthropic", input="Hi", store=True)
        with sdk.responses.stream(model="tools-openai", input="Weather?", tools=[WEATHER_TOOL]) as stream:
            streamed = stream.get_final_response()
        with pytest.raises(openai.BadRequestError) as continued:
            sdk.responses.create(model="chat-openai", previous_response_id=answered.id, input="Go on")
        with pytest.raises(openai.NotFoundError) as fetched:
            sdk.responses.retrieve(answered.id)
        with pytest.raises(openai.NotFoundError):
            sdk.responses.input_items.list(streamed.id)
        with pytest.raises(openai.NotFoundError):
            sdk.responses.delete(asked_to_store.id)

    assert answered.output_text and streamed.output[0].type == "function_call"
    assert (answered.store, asked_to_store.store, streamed.store) == (False, False, False)
    assert not StoredResponse.objects.exists()
    error = continued.value
    assert (error.status_code, error.body["param"], error.code) == (400, "previous_response_id", "bodies_not_stored")
    assert error.body["type"] == "invalid_request_error" and "logging policy stores no bodies" in error.message
    assert fetched.value.code == "response_not_found"
    records = wait_for_usage(7)  # 3 answers, the refused continuation, 3 reads and deletes
    assert {r.endpoint for r in records} == {"responses"}
    assert [r.status for r in records] == [200, 200, 200, 400, 404, 404, 404]


def test_turning_bodies_off_reaches_a_running_gateway_and_the_stored_conversation_is_gone(both_kinds):
    team = TeamFactory()
    key = services.issue_api_key(team=team).secret
    with start_gateway() as gateway:
        sdk = client(gateway.url, key)
        first = sdk.responses.create(model="chat-openai", input="Hi")
        assert first.store is True and sdk.responses.retrieve(first.id).id == first.id

        set_policy(team, stores_bodies=False)
        deadline = time.monotonic() + 10
        while (later := sdk.responses.create(model="chat-openai", input="Hi")).store:
            assert time.monotonic() < deadline, "the gateway did not apply the policy within 10 s"
            time.sleep(0.1)
        with pytest.raises(openai.BadRequestError) as continued:
            sdk.responses.create(model="chat-openai", previous_response_id=first.id, input="Go on")
        with pytest.raises(openai.NotFoundError):
            sdk.responses.retrieve(first.id)

        set_policy(team, stores_bodies=True)
        deadline = time.monotonic() + 10
        while not (again := sdk.responses.create(model="chat-openai", input="Hi")).store:
            assert time.monotonic() < deadline, "the gateway did not apply the policy within 10 s"
            time.sleep(0.1)
        assert sdk.responses.retrieve(again.id).id == again.id

    assert continued.value.body["param"] == "previous_response_id"
    assert later.store is False and not StoredResponse.objects.filter(id__in=[first.id, later.id]).exists()


def test_a_native_deployment_answers_a_team_that_stores_no_bodies_with_store_false(native):  # noqa: F811
    sdk, upstream, _, _, key = native
    [api_key] = [k for k in APIKey.objects.select_related("team") if key.startswith(k.prefix)]
    set_policy(api_key.team, stores_bodies=False)

    deadline = time.monotonic() + 10
    while (answered := sdk.responses.create(model="native", input="Hi")).store:
        assert time.monotonic() < deadline, "the gateway did not apply the policy within 10 s"
        time.sleep(0.1)
    with sdk.responses.stream(model="native", input="Hi") as stream:
        streamed = stream.get_final_response()
    with pytest.raises(openai.BadRequestError):
        sdk.responses.create(model="native", previous_response_id=answered.id, input="Go on")

    assert streamed.store is False and upstream.log.last["json"]["store"] is False
    assert not StoredResponse.objects.filter(id__in=[answered.id, streamed.id]).exists()


def test_the_purge_deletes_what_a_lagging_gateway_stored_for_a_team_that_stores_no_bodies():
    quiet, chatty = TeamFactory(stores_bodies=False), TeamFactory()
    for team, response_id in ((quiet, "resp_late"), (chatty, "resp_kept")):
        StoredResponse.objects.create(id=response_id, team=team, response={}, input_items=[], messages=[])

    assert responses_store.purge_expired() == 1
    assert list(StoredResponse.objects.values_list("id", flat=True)) == ["resp_kept"]
