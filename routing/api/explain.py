"""`POST /api/v1/routing/explain`: what the engine would decide for a call, without calling any provider.

    {"alias": "smart", "team": 12, "body": {"messages": [...], "max_tokens": 300}}
    -> {"alias": ..., "strategy": ..., "route": "<x-tollway-route>", "candidates": [...], "skipped": [...], ...}

The catalogue is read from the database (this process may serve no /v1 traffic); breakers, latency averages and
turn counters are this process's engine's (with Redis, what every gateway process shares). Turn counters and
random draws are copies: explaining never moves the next real call's turn. A semantic alias's prompt is embedded
where the gateway embeds its calls' (routing/engine/embeddings.py's EMBED_EXECUTOR), never on the event loop nor
beside it on a second thread: explains queue behind calls rather than take the cores from them.
"""

import copy
import random

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing import token_estimate
from core.bounds import clip
from core.values import DEFAULT_POLICY, SemanticChoice
from portal import roles
from portal.api.views import APIDefaults
from routing.control_plane import loader
from routing.engine import embeddings, semantic
from routing.engine.constraints import needs_for
from routing.engine.router import Engine
from routing.proxy import pipeline


class ExplainRequest(serializers.Serializer):
    alias = serializers.CharField(max_length=150)
    team = serializers.IntegerField(min_value=1, max_value=2**63 - 1)
    body = serializers.DictField(required=False, default=dict)
    endpoint = serializers.ChoiceField(choices=["chat.completions", "embeddings"], default="chat.completions")
    min_quality = serializers.FloatField(min_value=0, max_value=1, required=False, allow_null=True)


class ExplainView(APIDefaults, APIView):
    """The routing decision for a call from this team to this alias, as the gateway would make it now."""

    extra_error_codes = ("404",)  # no such team (or another tenant's), or no such alias

    @extend_schema(request=ExplainRequest, responses={200: dict})
    def post(self, request: Request) -> Response:
        asked = ExplainRequest(data=request.data)
        asked.is_valid(raise_exception=True)
        values = asked.validated_data
        # Another tenant's team is not there at all (404, as everywhere in the API).
        team = roles.teams_of(request.user).filter(pk=values["team"]).first()
        if team is None:
            raise NotFound("No such team.")
        aliases, _baselines, policies = loader.catalogue()
        alias = values["alias"]
        if alias not in aliases:
            raise NotFound(f"No alias named '{clip(alias)}' has enabled deployments.")
        body = values["body"]
        token_estimate.load()
        needs = needs_for(
            body,
            endpoint=values["endpoint"],
            prompt_tokens=token_estimate.count_prompt(body) if body else 0,
            principal_regions=frozenset(team.allowed_regions) if team.allowed_regions else None,
            principal_tags=frozenset(team.required_tags or ()),
            min_quality=values.get("min_quality"),
        )
        plan = _explaining_engine().decide(
            alias,
            aliases=aliases,
            policies=policies,
            needs=needs,
            semantic_choice=_semantic_choice(policies, alias, needs),
        )
        decision = plan.decision
        return Response(
            {
                **decision.to_record(),
                "route": decision.route_header(),
                "needs": {
                    "capabilities": sorted(needs.capabilities),
                    "prompt_tokens": needs.prompt_tokens,
                    "output_tokens": needs.output_tokens,
                    "min_quality": needs.min_quality,
                },
                "fallbacks": [route.alias for route in plan.routes[1:]],
                "deadline_ms": plan.deadline_ms,
            }
        )


def _semantic_choice(policies, alias: str, needs) -> SemanticChoice | None:
    policy = policies.get(alias, DEFAULT_POLICY)
    if policy.strategy != "semantic" or policy.semantic is None:
        return None
    # This view runs on Django's thread for sync code, which waits here; the embedding thread does the work.
    return embeddings.EMBED_EXECUTOR.submit(semantic.choose, policy.semantic, needs.routing_text).result()


def _explaining_engine() -> Engine:
    real = pipeline.engine()
    explaining = Engine(breakers=real.breakers, latency=real.latency, rng=random.Random())
    explaining.over_quota = real.over_quota
    explaining.state.round_robin = copy.copy(real.state.round_robin)
    explaining.state.in_flight = copy.copy(real.state.in_flight)
    return explaining
