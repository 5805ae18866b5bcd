"""Prompt templates published for the gateway tests, and the raw HTTP calls of /v1/prompts (the openai SDK has
no method for it)."""

import httpx

from portal.prompts import services
from tests.prompts.factories import make_prompt, team_owner


def published(*, team, alias="gpt-4o-mini", slug="ticker-summary", environment="prod", owner=None, **fields):
    """A template with version 1 frozen and published in `environment`; (template, its owner)."""
    owner = owner or team_owner(team)
    template = make_prompt(team=team, owner=owner, alias=alias, slug=slug, **fields)
    services.create_version(template, actor=owner, message="first")
    services.publish(template, actor=owner, environment=environment, version=1)
    return template, owner


def new_version(template, owner, **changes):
    """Change the draft and freeze it as the next version (not published)."""
    if changes:
        services.update_draft(template, actor=owner, **changes)
    return services.create_version(template, actor=owner, message="next")


def call_prompt(url: str, key: str, reference: str, body: dict | None = None, **kwargs) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/prompts/{reference}/completions",
        json=body if body is not None else {"variables": {"ticker": "ACME"}},
        headers={"authorization": f"Bearer {key}"},
        timeout=30,
        **kwargs,
    )
