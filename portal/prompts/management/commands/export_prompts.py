from django.core.management.base import BaseCommand, CommandError

from portal.models import Team, Tenant
from portal.prompts import documents


class Command(BaseCommand):
    help = "Write prompt templates as YAML (latest version's content and each environment's publication)."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", default="", help="a tenant's slug: only its prompts")
        parser.add_argument("--team", default="", help="a team's slug (or tenant/team): only its prompts")

    def handle(self, *args, tenant, team, **options):
        tenant_row = None
        if tenant:
            tenant_row = Tenant.objects.filter(slug=tenant).first()
            if tenant_row is None:
                raise CommandError(f"no tenant {tenant!r}")
        team_row = _team(team, tenant_row) if team else None
        # stdout carries the document alone: `manage.py export_prompts > prompts.yaml`.
        self.stdout.write(documents.dump(documents.export_document(tenant=tenant_row, team=team_row)), ending="")


def _team(name: str, tenant):
    if "/" in name:
        tenant_slug, name = name.split("/", 1)
        teams = Team.objects.filter(tenant__slug=tenant_slug, slug=name)
    else:
        teams = Team.objects.filter(slug=name)
    if tenant is not None:
        teams = teams.filter(tenant=tenant)
    found = list(teams.select_related("tenant")[:2])
    if not found:
        raise CommandError(f"no team {name!r}")
    if len(found) > 1:
        raise CommandError(f"several tenants have a team {name!r}: write tenant/team or add --tenant")
    return found[0]
