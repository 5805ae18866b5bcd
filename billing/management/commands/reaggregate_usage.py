from django.core.management.base import BaseCommand, CommandError

from billing import aggregation
from billing.management.commands.export_usage import parse_instant


class Command(BaseCommand):
    help = (
        "Recompute the usage aggregates of every hour that still has raw records (and their days), e.g. after an "
        "upgrade adds a dimension such as the routing strategy. Hours past retention are left as they are."
    )

    def add_arguments(self, parser):
        parser.add_argument("--since", help="ISO-8601, inclusive (default: the oldest hour still recomputable)")
        parser.add_argument("--until", help="ISO-8601, exclusive (default: now)")

    def handle(self, *args, since, until, **options):
        since_at = parse_instant(since, "--since") if since else None
        until_at = parse_instant(until, "--until") if until else None
        if since_at and until_at and until_at <= since_at:
            raise CommandError("--until must be after --since")
        recomputed = aggregation.reaggregate(since=since_at, until=until_at)
        self.stdout.write(f"recomputed {recomputed} bucket(s)")
