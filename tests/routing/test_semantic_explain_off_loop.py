"""/api/v1/routing/explain for a semantic alias embeds the prompt where the gateway embeds its calls' prompts, in
routing/engine/embeddings.py's one embedding thread, and never on the event loop: while that thread is busy the
explain waits in its queue and the gateway goes on answering /v1; once it is free the explain answers with the
route the real call would take.

The embedding thread is held by a job of the test's own (the executor is the real one, shared with the in-process
gateway); "the explain is queued there" is read from that executor's queue, so the test needs no timing."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from rest_framework.authtoken.models import Token

from config.asgi import application
from portal import services
from routing.catalogue import import_catalogue
from routing.engine import embeddings
from tests.catalogue.documents import platform  # noqa: F401 -- a fixture
from tests.portal.factories import TeamFactory, UserFactory
from tests.upstreams.server import LoopbackServer

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("platform")]

PORT = 19230
ROUTES = [
    {"name": "chit-chat", "target": "small", "examples": ["Hi!", "Thanks, that helps"]},
    {"name": "code", "target": "coder", "examples": ["Write a Python function that reverses a string"]},
]
BODY = {"messages": [{"role": "user", "content": "Write a Python function that reverses a list"}]}


@pytest.fixture
def gateway():
    names = ["small", "coder"]
    import_catalogue(
        data={
            "providers": [{"name": "local", "kind": "openai-compatible", "base_url": "http://127.0.0.1:9/v1"}],
            "deployments": [
                {"name": n, "provider": "local", "model": n, "input_per_1m": "1", "output_per_1m": "2"} for n in names
            ],
            "aliases": [
                {"name": "by-intent", "deployments": names, "routing": {"strategy": "semantic", "routes": ROUTES}}
            ],
        }
    )
    team = TeamFactory()
    with LoopbackServer(application, port=PORT, lifespan="on") as served:
        served.team = team
        served.admin = {"authorization": f"Token {Token.objects.create(user=UserFactory(is_superuser=True)).key}"}
        served.caller = {"authorization": f"Bearer {services.issue_api_key(team=team, name='caller').secret}"}
        yield served


def explain(gateway) -> httpx.Response:
    body = {"alias": "by-intent", "team": gateway.team.pk, "body": BODY}
    return httpx.post(f"{gateway.url}/api/v1/routing/explain", json=body, headers=gateway.admin, timeout=60)


def queued_embedding_jobs() -> int:
    return embeddings.EMBED_EXECUTOR._work_queue.qsize()


def test_explain_embeds_in_the_embedding_thread_and_the_gateway_serves_meanwhile(gateway):
    # Once through, so the model and the route examples are loaded (and the caller's key is known).
    first = explain(gateway)
    assert first.status_code == 200, first.text
    assert first.json()["route"].startswith("semantic (route code, ")
    assert httpx.get(f"{gateway.url}/v1/models", headers=gateway.caller).status_code == 200

    holding, release = threading.Event(), threading.Event()
    embeddings.EMBED_EXECUTOR.submit(lambda: (holding.set(), release.wait(60)))
    assert holding.wait(10), "the embedding thread never took the test's job"
    try:
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(explain, gateway)
            deadline = time.monotonic() + 20
            while queued_embedding_jobs() == 0 and not pending.done() and time.monotonic() < deadline:
                time.sleep(0.02)
            # The explain waits for the embedding thread: it embedded nowhere else.
            assert queued_embedding_jobs() == 1 and not pending.done(), "explain did not queue for the embed thread"
            models = httpx.get(f"{gateway.url}/v1/models", headers=gateway.caller, timeout=10)
            assert models.status_code == 200  # the event loop is free while the explain waits
            assert not pending.done()
            release.set()
            answer = pending.result(timeout=60)
    finally:
        release.set()

    assert answer.status_code == 200, answer.text
    assert answer.json()["route"] == first.json()["route"]
    assert answer.json()["candidates"][0] == "coder"
