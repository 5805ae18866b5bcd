"""Data residency of a team and of its keys: the regions their calls may run in, and the tags every deployment
they reach must carry. The gateway's engine skips a deployment outside the regions or lacking a tag.

A team's lists are set by its owners and the tenant's admins. A key's are set when it is made and can only
narrow its team: its regions must lie within the team's (when the team has some), and its tags add to the
team's. The data plane combines the two (regions: both lists' intersection when both are set, else whichever
is; tags: their union), so a key whose team is narrowed later reaches only the regions in both.

Regions and tags are lowercase slugs, like the catalogue's deployments carry: "EU" is stored as "eu", so a
team's "EU" cannot miss a deployment in "eu".
"""

import re
from collections.abc import Iterable

from django.db import transaction

from portal import roles
from portal.errors import InvalidInput, NotAllowed
from portal.models import APIKey, Team
from portal.services import audit
from routing.control_plane import feed

RESIDENCY_FIELDS = ("allowed_regions", "required_tags")
MAX_ENTRIES = 20
SLUG_MAX_LENGTH = 32
_SLUG = re.compile(r"[A-Za-z0-9_-]+")


class InvalidResidency(InvalidInput):
    """A region or tag list that cannot be stored, naming the field it came in."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.problem = message

    def sentence(self) -> str:
        """The problem alone, as a form shows it beside its field."""
        return self.problem[:1].upper() + self.problem[1:] + "."


def cleaned_slugs(value: object, *, field: str) -> list[str]:
    """A region or tag list as stored: lowercase, each listed once, sorted. Raises InvalidResidency."""
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        raise InvalidResidency(field, "must be a list of names")
    items = list(value)
    if len(items) > MAX_ENTRIES:
        raise InvalidResidency(field, f"at most {MAX_ENTRIES} names, not {len(items)}")
    slugs: set[str] = set()
    for item in items:
        if not isinstance(item, str) or not item:
            raise InvalidResidency(field, "each name must be a non-empty string")
        if len(item) > SLUG_MAX_LENGTH:
            raise InvalidResidency(field, f"each name must be at most {SLUG_MAX_LENGTH} characters")
        # Checked before lowercasing: some non-ASCII letters lowercase to ASCII ones (the Kelvin sign to "k").
        if not _SLUG.fullmatch(item):
            # No echo of the name itself: it is the client's, and this message reaches logs and pages.
            raise InvalidResidency(field, "names may contain only letters, digits, hyphens and underscores")
        slugs.add(item.lower())
    return sorted(slugs)


def regions_outside_team(*, team: Team, regions: Iterable[str]) -> list[str]:
    """The regions a key of this team may not list: those outside the team's, when the team has some."""
    return _outside(team.allowed_regions, regions)


def _outside(team_regions: list[str], regions: Iterable[str]) -> list[str]:
    return sorted(set(regions) - set(team_regions)) if team_regions else []


def check_key_residency(*, team: Team, allowed_regions: object, required_tags: object) -> tuple[list[str], list[str]]:
    """A new key's regions and tags as stored. Raises InvalidResidency when they do not narrow the team."""
    regions = cleaned_slugs(allowed_regions, field="allowed_regions")
    tags = cleaned_slugs(required_tags, field="required_tags")
    # The team's regions as stored, not as the caller's copy of the team last saw them.
    team_regions = Team.objects.values_list("allowed_regions", flat=True).get(pk=team.pk)
    outside = _outside(team_regions, regions)
    if outside:
        raise InvalidResidency(
            "allowed_regions",
            f"a key can only narrow its team's regions ({', '.join(team_regions)}); "
            f"{', '.join(outside)} {'is' if len(outside) == 1 else 'are'} not among them",
        )
    return regions, tags


def keys_beyond_team(*, team: Team) -> list[APIKey]:
    """Live keys of the team listing regions outside the team's: they now reach only the regions in both."""
    keys = team.api_keys.filter(is_revoked=False).exclude(allowed_regions=[]).order_by("pk")
    return [key for key in keys if regions_outside_team(team=team, regions=key.allowed_regions)]


@transaction.atomic
def set_team_residency(
    *,
    team: Team,
    changed_by,
    allowed_regions: object = None,
    required_tags: object = None,
) -> Team:
    """Replace the team's regions and/or tags (None leaves one as it is; [] clears it). Audited when it
    changes something: `team.residency_changed`, with the lists before and after."""
    if not roles.can_manage_team(changed_by, team):
        raise NotAllowed("only the team's owners and the tenant's admins can change its data residency")
    asked = {"allowed_regions": allowed_regions, "required_tags": required_tags}
    changes = {name: cleaned_slugs(value, field=name) for name, value in asked.items() if value is not None}
    # The feed's counter first, as every writer of watched rows takes it (routing/control_plane/feed.py), then
    # the row: two owners editing at once must not audit a "before" that the other has already replaced.
    feed.hold_feed()
    team = Team.objects.select_for_update().get(pk=team.pk)
    changes = {name: value for name, value in changes.items() if getattr(team, name) != value}
    if not changes:
        return team
    before = {name: getattr(team, name) for name in changes}
    for name, value in changes.items():
        setattr(team, name, value)
    # save(), never update(): the change feed records it and every gateway applies it.
    team.save(update_fields=list(changes))
    audit.record(
        tenant=team.tenant,
        actor=changed_by,
        action="team.residency_changed",
        target=team,
        details={"before": before, "after": changes},
    )
    return team
