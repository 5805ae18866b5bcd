from datetime import UTC, datetime

from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_date, parse_datetime

from billing import export, selectors


def parse_instant(value: str, option: str) -> datetime:
    parsed = parse_datetime(value)
    if parsed is None:
        day = parse_date(value)
        if day is not None:
            parsed = datetime(day.year, day.month, day.day)
    if parsed is None:
        raise CommandError(f"{option}: {value!r} is not an ISO-8601 date or date-time")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class Command(BaseCommand):
    help = "Write usage records, one per line, as CSV (with a header) or JSON Lines. Times are UTC unless given."

    def add_arguments(self, parser):
        parser.add_argument("--since", help="ISO-8601, inclusive")
        parser.add_argument("--until", help="ISO-8601, exclusive")
        parser.add_argument("--format", choices=["csv", "jsonl"], default="csv")
        parser.add_argument("--output", help="file to write (default: stdout)")

    def handle(self, *args, since, until, format, output, **options):
        since_at = parse_instant(since, "--since") if since else None
        until_at = parse_instant(until, "--until") if until else None
        if since_at and until_at and until_at <= since_at:
            raise CommandError("--until must be after --since")
        records = selectors.usage_records_between(since=since_at, until=until_at).iterator(chunk_size=2000)
        write = export.write_csv if format == "csv" else export.write_jsonl
        if output:
            with open(output, "w", newline="") as handle:
                write(records, handle)
        else:
            write(records, self.stdout)
