"""POST /v1/feedback through real HTTP against a real gateway: a team rates its own calls (200, stored, the last
rating wins), another team's request id and an unknown one answer 404, bad input a 400 in OpenAI's JSON, and a
rating of a bandit's call teaches that bandit."""

import httpx
import openai
import pytest

from billing.models import Feedback
from portal import services
from routing.catalogue import import_catalogue
from tests.gateway import start_gateway, wait_for_usage
from tests.portal.factories import TeamFactory

pytestmark = pytest.mark.django_db(transaction=True)
CHAT = [{"role": "user", "content": "Hi"}]


@pytest.fixture
def catalogue(openai_upstream):
    deployment = {"provider": "up", "model": "gpt-4o-mini", "input_per_1m": "1", "output_per_1m": "2"}
    import_catalogue(
        data={
            "providers": [
                {"name": "up", "kind": "openai", "base_url": f"{openai_upstream.url}/v1", "api_key": "sk-upstream-test"}
            ],
            "deployments": [{"name": "cheap", **deployment}, {"name": "premium", **deployment}],
            "aliases": [
                {
                    "name": "learner",
                    "deployments": ["cheap", "premium"],
                    "routing": {"strategy": "bandit", "bandit": {"exploration": 0}},
                }
            ],
        }
    )


@pytest.fixture
def keys(catalogue):
    ours, theirs = TeamFactory(name="Ours"), TeamFactory(name="Theirs")
    return (
        services.issue_api_key(team=ours, name="ours").secret,
        services.issue_api_key(team=theirs, name="theirs").secret,
    )


def test_a_team_rates_its_own_call_and_no_one_elses(keys, settings):
    settings.TOLLWAY_FEEDBACK_WAIT_S = 0.5
    ours, theirs = keys
    with start_gateway() as gateway:
        sdk = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=ours, max_retries=0)
        answered = sdk.chat.completions.with_raw_response.create(model="learner", messages=CHAT)
        request_id = answered.headers["x-request-id"]

        def post(key, body):
            return httpx.post(f"{gateway.url}/v1/feedback", json=body, headers={"authorization": f"Bearer {key}"})

        first = post(ours, {"request_id": request_id, "score": 0.25})
        again = post(ours, {"request_id": request_id, "score": 1})
        other = post(theirs, {"request_id": request_id, "score": 0})
        unknown = post(ours, {"request_id": "req_nope", "score": 0.5})
        bad = [post(ours, {"request_id": request_id, "score": s}) for s in (1.5, "high", True, None)]
        no_id = post(ours, {"score": 0.5})

    assert first.status_code == 200 and first.json()["replaced"] is False
    assert again.status_code == 200 and again.json()["replaced"] is True
    assert other.status_code == 404 and other.json()["error"]["code"] == "unknown_request_id"
    assert unknown.status_code == 404
    assert [r.status_code for r in bad] == [400] * 4 and all(r.json()["error"]["param"] == "score" for r in bad)
    assert no_id.status_code == 400 and no_id.json()["error"]["param"] == "request_id"
    [rating] = Feedback.objects.all()
    assert rating.score == 1.0 and rating.usage.request_id == request_id
    assert rating.reward == 1.0  # quality weight 1, no cost or latency weight: the score itself
    # The call and each of the 9 feedback requests leave one usage record each.
    assert len(wait_for_usage(10)) == 10
