"""Semantic routing: a prompt goes to the route whose nearest example is most similar to it (cosine similarity of
all-MiniLM-L6-v2 embeddings, routing/engine/embeddings.py), when that similarity reaches the policy's threshold;
else to the default.

Nearest example, not the routes' centroids nor a top-3 mean: on the RouterBench task split the three are within
two points of each other (bench/embedder_eval.py), and the nearest example is what the issue asks for, says to an
admin which example a prompt resembled, and does not blur a route whose examples are of several kinds (a SQL fix
and a Python function are both "code").

Where the chosen target goes (router.py applies it): a deployment of the alias is tried first, then the alias's
other deployments in their listed order (fail-over as usual). Another alias is tried as that alias routes (its
eligible deployments in its own strategy's order; a semantic or cascade target alias in listed order, so that
routes never nest), and then this alias's own deployments. The target alias's fallbacks are not followed; this
alias's are.
"""

import logging

from core.values import SemanticChoice, SemanticPolicy
from routing.engine import embeddings

log = logging.getLogger(__name__)


def choose(policy: SemanticPolicy, text: str) -> SemanticChoice:
    """Where this prompt goes. Blocking (embeds the text, and the examples on a policy's first call): the gateway
    calls it through choose_off_loop. Never raises: without text or an embedder, the default is taken."""
    if not text.strip():
        return _default(policy, score=None, why="no user text")
    try:
        examples = embeddings.example_matrix(policy.examples())
        query = embeddings.get_model().embed([text])[0]
    except Exception as exc:  # a missing or broken model package must not fail the call: say so and route on
        log.warning("semantic routing: the embedder is unavailable (%s); using the default", exc)
        return _default(policy, score=None, why="embedder unavailable")
    return decide(policy, (examples @ query).tolist())


def decide(policy: SemanticPolicy, similarities: list[float]) -> SemanticChoice:
    """The choice from each example's similarity to the prompt (in policy.examples() order). Pure."""
    best_route, best_score = "", None
    position = 0
    for route in policy.routes:
        scores = similarities[position : position + len(route.examples)]
        position += len(route.examples)
        if scores and (best_score is None or max(scores) > best_score):
            best_route, best_score = route, max(scores)
    if best_route and best_score >= policy.threshold:
        return SemanticChoice(
            route=best_route.name, target=best_route.target, score=best_score, best_route=best_route.name
        )
    return _default(policy, score=best_score, best_route=best_route.name if best_route else "")


async def choose_off_loop(policy: SemanticPolicy, text: str) -> SemanticChoice:
    return await embeddings.run_off_loop(choose, policy, text)


def reason(choice: SemanticChoice) -> str:
    """x-tollway-route's reason: "route code, 0.82" or "default, best chit-chat 0.41"."""
    if choice.route:
        return f"route {choice.route}, {choice.score:.2f}"
    if choice.score is None:
        return f"default, {choice.why}"
    return f"default, best {choice.best_route} {choice.score:.2f}"


def warm(policies) -> None:
    """Load the model and embed every semantic policy's examples in the embedding thread, without waiting, when a
    snapshot has semantic aliases: the first call then does not pay the load. Nothing happens otherwise."""
    semantic = [p.semantic for p in policies.values() if p.strategy == "semantic" and p.semantic is not None]
    new = [s for s in semantic if not embeddings.has_examples_cached(s.examples())]
    if not new or embeddings.load_failed():
        return  # nothing to embed, or no model to embed it with (said once, not at every refresh)

    def load() -> None:
        for policy in new:
            try:
                embeddings.example_matrix(policy.examples())
            except Exception as exc:
                log.warning("semantic routing: could not embed a policy's examples (%s)", exc)
                return

    embeddings.EMBED_EXECUTOR.submit(load)


def _default(policy: SemanticPolicy, *, score: float | None, best_route: str = "", why: str = "") -> SemanticChoice:
    return SemanticChoice(route="", target=policy.default, score=score, best_route=best_route, why=why)
