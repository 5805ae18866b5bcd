"""Prompt templates for tests, written through the services (so they are valid and audited like real ones)."""

from portal.models import Membership
from portal.prompts import services
from tests.factories import ModelAliasFactory, TeamFactory
from tests.portal.factories import MembershipFactory

TICKER_MESSAGES = [
    {"role": "system", "content": "You are a terse equity analyst."},
    {"role": "user", "content": "Summarise {{ticker}} for {{quarter}} in {{words}} words."},
]
TICKER_VARIABLES = {
    "ticker": {"type": "string", "required": True},
    "quarter": {"type": "enum", "values": ["Q1", "Q2", "Q3", "Q4"], "default": "Q1"},
    "words": {"type": "integer", "default": 50},
}


def team_owner(team=None):
    """A user who owns a (new) team."""
    team = team or TeamFactory()
    return MembershipFactory(team=team, tenant=team.tenant, role=Membership.Role.TEAM_OWNER).user


def make_prompt(*, team=None, owner=None, alias=None, slug="ticker-summary", **fields):
    team = team or TeamFactory()
    owner = owner or team_owner(team)
    alias = alias or ModelAliasFactory().name
    return services.create_template(
        actor=owner,
        team=team,
        slug=slug,
        name=fields.pop("name", "Ticker summary"),
        alias=alias,
        messages=fields.pop("messages", TICKER_MESSAGES),
        variables=fields.pop("variables", TICKER_VARIABLES),
        **fields,
    )
