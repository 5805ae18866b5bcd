"""A team's logging policy: whether the gateway keeps the bodies of its calls (Team.stores_bodies).

The only bodies the gateway keeps are stored /v1/responses answers (routing.models.StoredResponse), kept so
that `previous_response_id` can continue a conversation. A team that stores no bodies gets none kept: its
responses say `store: false`, `previous_response_id` is refused with a 400 that names the policy, and its
response ids answer 404. Usage records (counts, cost, status) are kept either way.

Set by the team's owners and the tenant's admins; every gateway applies it through the change feed within
seconds. Turning it off also deletes what the team has stored so far (a policy that stores no bodies must not
leave yesterday's in the database for the retention period): the gateways stop reading them at once, and the
stored-responses purge deletes them right after the commit, in batches, outside this transaction (which holds
the change feed's counter: one large delete here would hold up every other catalogue and key write).
"""

from django.db import transaction

from portal import roles
from portal.errors import NotAllowed
from portal.models import Team
from portal.services import audit
from routing import tasks as routing_tasks
from routing.control_plane import feed


@transaction.atomic
def set_team_logging_policy(*, team: Team, changed_by, stores_bodies: bool) -> Team:
    """Keep the team's bodies or not. Audited when it changes: `team.logging_policy_changed`, with the value
    before and after."""
    if not roles.can_manage_team(changed_by, team):
        raise NotAllowed("only the team's owners and the tenant's admins can change its logging policy")
    # The feed's counter, then the row, as every writer of watched rows (routing/control_plane/feed.py).
    feed.hold_feed()
    team = Team.objects.select_for_update().get(pk=team.pk)
    if team.stores_bodies == stores_bodies:
        return team
    team.stores_bodies = stores_bodies
    # save(), never update(): the change feed records it and every gateway applies it.
    team.save(update_fields=["stores_bodies"])
    audit.record(
        tenant=team.tenant,
        actor=changed_by,
        action="team.logging_policy_changed",
        target=team,
        details={"before": {"stores_bodies": not stores_bodies}, "after": {"stores_bodies": stores_bodies}},
    )
    if not stores_bodies:
        # robust: a broker that is down must not fail a change already committed; the hourly purge follows.
        transaction.on_commit(routing_tasks.purge_expired_responses.delay, robust=True)
    return team
