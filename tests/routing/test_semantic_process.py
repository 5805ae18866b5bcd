"""A gateway process pays for the embedding model only when its catalogue has a semantic alias (issue 10 bounds a
process's memory): read from the outside, in /proc/<pid>/maps, whether the process has mapped the model's weights
and the tokenizer's native library. Without a semantic alias it has not, even after serving calls; once a semantic
alias reaches it through the change feed, it loads them (in the background) and routes by them."""

import time
from pathlib import Path

import openai
import pytest

from portal import services
from routing.catalogue import import_catalogue
from routing.engine import embeddings
from tests.gateway_process import GatewayProcess
from tests.portal.factories import TeamFactory
from tests.upstreams.canned_server import CannedUpstream
from tests.upstreams.server import LoopbackServer

pytestmark = pytest.mark.django_db(transaction=True)

SEMANTIC = {
    "strategy": "semantic",
    "routes": [{"name": "greeting", "target": "cheap", "examples": ["Hi!", "Good morning!"]}],
    "threshold": 0.6,
    "default": "premium",
}


def mapped_model_files(pid: int) -> set[str]:
    """Which of the model's weights and the tokenizer library the process has mapped."""
    weights = str(embeddings.model_dir() / "model.safetensors")
    found = set()
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        path = line.split()[-1] if len(line.split()) >= 6 else ""
        if path == weights:
            found.add("weights")
        elif "/tokenizers/" in path and path.endswith(".so"):
            found.add("tokenizer")
    return found


def catalogue(upstream_url: str, *, semantic: bool) -> dict:
    return {
        "providers": [{"name": "canned", "kind": "openai-compatible", "base_url": f"{upstream_url}/v1"}],
        "deployments": [
            {"name": n, "provider": "canned", "model": n, "input_per_1m": "1", "output_per_1m": "2"}
            for n in ("cheap", "premium")
        ],
        "aliases": [
            {"name": "plain", "deployments": ["premium", "cheap"]},
            {"name": "cheapest", "deployments": ["premium", "cheap"], "routing": {"strategy": "cheapest"}},
            *([{"name": "by-intent", "deployments": ["premium", "cheap"], "routing": SEMANTIC}] if semantic else []),
        ],
    }


def test_a_process_without_semantic_aliases_never_loads_the_model_and_one_with_them_does(tmp_path):
    canned = CannedUpstream()
    with LoopbackServer(canned) as upstream:
        canned.answer("cheap", "cheap answer")
        canned.answer("premium", "premium answer")
        import_catalogue(data=catalogue(upstream.url, semantic=False))
        key = services.issue_api_key(team=TeamFactory(), name="process").secret
        with GatewayProcess(workers=1, outbox_dir=tmp_path / "outbox") as gateway:
            sdk = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0, timeout=60)
            for alias in ("plain", "cheapest"):
                for _ in range(3):
                    sdk.chat.completions.create(model=alias, messages=[{"role": "user", "content": "Hi!"}])
            time.sleep(1.5)  # a few refreshes of the snapshot: nothing may load in the background either
            assert mapped_model_files(gateway.process.pid) == set()

            import_catalogue(data=catalogue(upstream.url, semantic=True))
            deadline = time.monotonic() + 60
            while mapped_model_files(gateway.process.pid) != {"weights", "tokenizer"}:
                assert time.monotonic() < deadline, mapped_model_files(gateway.process.pid)
                time.sleep(0.2)
            raw = sdk.chat.completions.with_raw_response.create(
                model="by-intent", messages=[{"role": "user", "content": "Hi!"}]
            )
            assert raw.headers["x-tollway-deployment"] == "cheap"
            assert raw.headers["x-tollway-route"] == "semantic (route greeting, 1.00)"
