"""Stored responses: previous_response_id across providers and across gateway processes, GET / DELETE /
input_items of a team's own ids only, store false, retention."""

from datetime import timedelta

import openai
import pytest
from django.utils import timezone

from routing.models import StoredResponse
from routing.proxy import responses_store
from tests.gateway import start_gateway, wait_for_usage
from tests.gateway_process import GatewayProcess
from tests.responses.conftest import REPLIES

pytestmark = pytest.mark.django_db(transaction=True)


def client(url: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)


def test_get_delete_and_input_items_of_a_stored_response(gateway):
    sdk = gateway.client()
    first = sdk.responses.create(model="chat", instructions="Be brief.", input="Hi", metadata={"ticket": "T-1"})
    second = sdk.responses.create(model="chat", previous_response_id=first.id, input="And again?")

    fetched = sdk.responses.retrieve(second.id)
    assert fetched.id == second.id and fetched.output_text == second.output_text
    assert fetched.previous_response_id == first.id
    assert sdk.responses.retrieve(first.id).metadata == {"ticket": "T-1"}

    # The whole conversation's input, newest first (OpenAI's default order): this turn, the answer, the first.
    items = list(sdk.responses.input_items.list(second.id))
    assert [item.type for item in items] == ["message", "message", "message"]
    assert [item.role for item in items] == ["user", "assistant", "user"]
    assert items[0].content[0].text == "And again?" and items[2].content[0].text == "Hi"
    ascending = sdk.responses.input_items.list(second.id, order="asc", limit=1)
    assert [item.id for item in ascending.data] == [items[2].id] and ascending.has_more

    deleted = sdk.responses.delete(second.id)
    assert deleted is None  # the SDK returns nothing for a 200 delete
    with pytest.raises(openai.NotFoundError) as missing:
        sdk.responses.retrieve(second.id)
    assert missing.value.code == "response_not_found"
    with pytest.raises(openai.NotFoundError):
        sdk.responses.delete(second.id)
    assert sdk.responses.retrieve(first.id).id == first.id  # only that one went
    records = wait_for_usage(10)  # 2 creates, 8 reads and deletes
    assert {r.endpoint for r in records} == {"responses"}
    assert sum(1 for r in records if r.prompt_tokens) == 2  # the two answers; reads cost nothing
    assert all(r.cost_usd == 0 for r in records if not r.prompt_tokens)


def test_another_teams_ids_answer_404(gateway):
    mine = gateway.client().responses.create(model="chat", input="Hi")
    theirs = gateway.client(gateway.other_key)

    with pytest.raises(openai.NotFoundError):
        theirs.responses.retrieve(mine.id)
    with pytest.raises(openai.NotFoundError):
        theirs.responses.input_items.list(mine.id)
    with pytest.raises(openai.NotFoundError):
        theirs.responses.delete(mine.id)
    with pytest.raises(openai.NotFoundError) as continued:
        theirs.responses.create(model="chat", previous_response_id=mine.id, input="Go on")
    assert continued.value.body["param"] == "previous_response_id"
    assert gateway.client().responses.retrieve(mine.id).id == mine.id  # still there for its own team


def test_store_false_keeps_nothing(gateway):
    sdk = gateway.client()
    response = sdk.responses.create(model="chat", input="Hi", store=False)

    assert response.store is False and response.output_text == gateway.reply
    assert not StoredResponse.objects.filter(id=response.id).exists()
    with pytest.raises(openai.NotFoundError):
        sdk.responses.create(model="chat", previous_response_id=response.id, input="Go on")


def test_a_streamed_response_is_stored_before_its_completed_event(gateway):
    sdk = gateway.client()
    with sdk.responses.stream(model="chat", input="Hi") as stream:
        for event in stream:
            if event.type == "response.completed":
                # Stored already: a client may continue the moment it reads the event.
                assert StoredResponse.objects.filter(id=event.response.id).exists()
        response = stream.get_final_response()
    assert sdk.responses.retrieve(response.id).output_text == response.output_text


def test_previous_response_id_continues_across_providers(both_kinds):
    servers, key, _ = both_kinds
    with start_gateway() as gateway:
        sdk = client(gateway.url, key)
        first = sdk.responses.create(model="chat-openai", instructions="Answer in French.", input="My name is Ada.")
        second = sdk.responses.create(model="chat-anthropic", previous_response_id=first.id, input="My name?")

    assert first.output_text == REPLIES["openai-compatible"]
    assert second.output_text == REPLIES["anthropic"]
    sent = servers["anthropic"].log.last["json"]
    # The Anthropic upstream got the conversation begun on the OpenAI one; instructions do not carry over.
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]
    assert "My name is Ada." in str(sent["messages"][0]) and REPLIES["openai-compatible"] in str(sent["messages"][1])
    assert "French" not in str(sent.get("system"))


def test_previous_response_id_continues_across_gateway_processes(both_kinds, tmp_path):
    servers, key, other_key = both_kinds
    with (
        GatewayProcess(outbox_dir=tmp_path / "a") as gateway_a,
        GatewayProcess(outbox_dir=tmp_path / "b") as gateway_b,
    ):
        first = client(gateway_a.url, key).responses.create(model="chat-openai", input="My name is Ada.")
        second = client(gateway_b.url, key).responses.create(
            model="chat-anthropic", previous_response_id=first.id, input="My name?"
        )
        assert client(gateway_b.url, key).responses.retrieve(first.id).id == first.id
        with pytest.raises(openai.NotFoundError):
            client(gateway_b.url, other_key).responses.retrieve(first.id)
        client(gateway_a.url, key).responses.delete(second.id)
        with pytest.raises(openai.NotFoundError):
            client(gateway_b.url, key).responses.retrieve(second.id)

    assert "My name is Ada." in str(servers["anthropic"].log.last["json"]["messages"])


def test_retention_hides_then_purges_old_responses(gateway, settings):
    sdk = gateway.client()
    old = sdk.responses.create(model="chat", input="Hi")
    recent = sdk.responses.create(model="chat", input="Hi")
    days = settings.TOLLWAY_RESPONSES_RETENTION_DAYS
    StoredResponse.objects.filter(id=old.id).update(created_at=timezone.now() - timedelta(days=days, hours=1))

    with pytest.raises(openai.NotFoundError):  # past retention: gone for the API at once
        sdk.responses.retrieve(old.id)
    assert responses_store.purge_expired(batch_size=1) == 1
    assert list(StoredResponse.objects.values_list("id", flat=True)) == [recent.id]
