import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from routing.catalogue import CatalogueError, import_catalogue, load_catalogue_yaml


class Command(BaseCommand):
    help = "Create or update providers, deployments and aliases from a catalogue YAML file (see routing/catalogue)."
    # Tests pass a StringIO as stdin to read "-" from.
    stealth_options = ("stdin",)

    def add_arguments(self, parser):
        parser.add_argument("file", help="the catalogue YAML file, or - to read standard input")

    def handle(self, *args, file: str, **options):
        if file == "-":
            source, text = "<stdin>", (options.get("stdin") or sys.stdin).read()
        else:
            source = file
            try:
                text = Path(file).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise CommandError(f"cannot read {file}: {exc}") from None
        try:
            report = import_catalogue(data=load_catalogue_yaml(text=text, source=source), source=source)
        except CatalogueError as exc:
            for error in exc.errors:
                self.stderr.write(f"{source}: {error}")
            raise CommandError(f"{len(exc.errors)} error(s) in {source}; nothing was imported") from None
        self.stdout.write(str(report))
