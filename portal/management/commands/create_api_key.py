from django.core.management.base import BaseCommand, CommandError

from portal import services


class Command(BaseCommand):
    help = "Create an API key for a team (creating the team and tenant if needed); prints only the secret."

    def add_arguments(self, parser):
        parser.add_argument("--team", required=True)
        parser.add_argument("--tenant", default="default")
        parser.add_argument("--aliases", default="", help="comma-separated model aliases; empty: all")
        parser.add_argument("--name", default="")
        parser.add_argument("--rpm", type=int, default=None)
        parser.add_argument("--tpm", type=int, default=None)

    def handle(self, *args, team, tenant, aliases, name, rpm, tpm, **options):
        if not team.strip():
            raise CommandError("--team must not be empty")
        team_obj = services.ensure_team(team_name=team.strip(), tenant_name=tenant.strip() or "default")
        issued = services.issue_api_key(
            team=team_obj,
            name=name,
            allowed_aliases=[a.strip() for a in aliases.split(",") if a.strip()],
            rpm_limit=rpm,
            tpm_limit=tpm,
            actor_label="manage.py create_api_key",
        )
        # stdout carries the secret alone, so `KEY=$(manage.py create_api_key ...)` works.
        self.stdout.write(issued.secret)
