"""What holding a cascade's stream costs in time to first byte, through the real gateway. Run by hand:

    .venv/bin/python bench/cascade_ttfb.py                       # 50 tokens at 20 ms each, 7 calls per alias
    .venv/bin/python bench/cascade_ttfb.py --tokens 200 --pace-ms 10 --calls 5

A loopback upstream in OpenAI's wire format streams an answer of --tokens chunks, one every --pace-ms. The same
streamed call goes through the official openai SDK to two aliases of that one deployment: `direct` (strategy
priority: relayed as it comes) and `held` (a cascade whose first step is that deployment and whose check,
not-empty, passes: the step is held until its stream ends, then replayed). TTFB is the time from sending the call
to the first content chunk the client reads; the medians are printed with their difference and ratio. The held
TTFB is expected to be about the whole answer's time (tokens x pace): the cost of never sending two answers.
"""

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SCRATCH = Path(tempfile.mkdtemp(prefix="tollway-cascade-ttfb-"))
os.environ.setdefault("DATABASE_URL", f"sqlite:///{SCRATCH / 'ttfb.sqlite3'}")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ["TOLLWAY_ALLOW_LOOPBACK_UPSTREAMS"] = "1"  # the upstream is on 127.0.0.1
os.environ.setdefault("TOLLWAY_USAGE_OUTBOX_DIR", str(SCRATCH / "outbox"))
os.environ.setdefault("TOLLWAY_ACCESS_LOG", "0")

import django  # noqa: E402

django.setup()

import openai  # noqa: E402
from django.core.management import call_command  # noqa: E402

from config.asgi import application  # noqa: E402  (it runs django.setup() again: import it before logging is set)
from routing.catalogue.importer import import_catalogue  # noqa: E402
from tests.upstreams.canned_server import CannedUpstream  # noqa: E402
from tests.upstreams.server import LoopbackServer  # noqa: E402

CHAT = [{"role": "user", "content": "Tell me a story."}]
PIECE = "word"  # the canned upstream streams its answer in pieces of four characters: one piece, one chunk


def catalogue(upstream_url: str) -> dict:
    deployment = {"provider": "paced", "model": "paced", "input_per_1m": "1", "output_per_1m": "2"}
    return {
        "providers": [{"name": "paced", "kind": "openai-compatible", "base_url": f"{upstream_url}/v1"}],
        "deployments": [{"name": "cheap", **deployment}, {"name": "premium", **deployment, "model": "premium"}],
        "aliases": [
            {"name": "direct", "deployments": ["cheap"], "routing": {"strategy": "priority"}},
            {
                "name": "held",
                "deployments": ["cheap", "premium"],
                "routing": {
                    "strategy": "cascade",
                    "cascade": {"steps": ["cheap", "premium"], "checks": [{"type": "not-empty"}]},
                },
            },
        ],
    }


def issue_key() -> str:
    from portal import services
    from portal.models import Team, Tenant

    tenant = Tenant.objects.create(name="Cascade TTFB", slug="cascade-ttfb")
    team = Team.objects.create(tenant=tenant, name="Bench", slug="bench")
    return services.issue_api_key(team=team, name="cascade-ttfb").secret


def ttfb_and_total_ms(sdk: openai.OpenAI, alias: str, *, expected: str) -> tuple[float, float]:
    started = time.perf_counter()
    first = None
    text = []
    raw = sdk.chat.completions.with_raw_response.create(model=alias, messages=CHAT, stream=True)
    for chunk in raw.parse():
        for choice in chunk.choices:
            if choice.delta.content:
                first = first or time.perf_counter()
                text.append(choice.delta.content)
    total = time.perf_counter()
    if "".join(text) != expected or raw.headers["x-tollway-deployment"] != "cheap":
        raise RuntimeError(f"{alias}: not the cheap step's whole answer ({raw.headers.get('x-tollway-route')})")
    return (first - started) * 1000, (total - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=50, help="chunks in the upstream's answer")
    parser.add_argument("--pace-ms", type=float, default=20.0, help="milliseconds between two chunks")
    parser.add_argument("--calls", type=int, default=7, help="calls per alias (after one warm-up each)")
    args = parser.parse_args()

    for name in ("tollway.access", "httpx", "httpx2"):  # a line per call would bury the figures
        logging.getLogger(name).setLevel(logging.WARNING)
    call_command("migrate", verbosity=0)
    upstream = CannedUpstream(stream_delay_s=args.pace_ms / 1000)
    answer = PIECE * args.tokens
    upstream.answer("paced", answer)
    with LoopbackServer(upstream) as upstream_server:
        import_catalogue(data=catalogue(upstream_server.url), source="cascade-ttfb")
        key = issue_key()
        with LoopbackServer(application, lifespan="on") as gateway:
            sdk = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0)
            figures: dict[str, list[tuple[float, float]]] = {"direct": [], "held": []}
            for alias in figures:
                ttfb_and_total_ms(sdk, alias, expected=answer)  # warm-up: connections, the tokenizer
            for _ in range(args.calls):
                for alias in figures:  # interleaved, so both see the same machine
                    figures[alias].append(ttfb_and_total_ms(sdk, alias, expected=answer))

    print(f"{args.tokens} chunks, one every {args.pace_ms:g} ms ({args.tokens * args.pace_ms:.0f} ms of answer), "
          f"{args.calls} streamed calls each, medians:")  # fmt: skip
    medians = {}
    for alias, runs in figures.items():
        medians[alias] = statistics.median(t for t, _ in runs), statistics.median(total for _, total in runs)
        label = "priority (relayed)" if alias == "direct" else "cascade, check passes (held)"
        print(f"  {label:<30} TTFB {medians[alias][0]:8.1f} ms   whole answer {medians[alias][1]:8.1f} ms")
    added = medians["held"][0] - medians["direct"][0]
    ratio = medians["held"][0] / medians["direct"][0] if medians["direct"][0] else float("inf")
    whole = medians["held"][1] - medians["direct"][1]
    print(f"  holding adds {added:.1f} ms to TTFB ({ratio:.0f}x), {whole:+.1f} ms to the whole answer")


if __name__ == "__main__":
    main()
