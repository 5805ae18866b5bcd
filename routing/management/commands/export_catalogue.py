from pathlib import Path

from django.core.management.base import BaseCommand

from routing.catalogue import dump_catalogue_yaml, export_catalogue


class Command(BaseCommand):
    help = "Write the stored providers, deployments and aliases as catalogue YAML, without any secret."

    def add_arguments(self, parser):
        parser.add_argument("file", nargs="?", default="-", help="where to write; standard output by default")

    def handle(self, *args, file: str, **options):
        catalogue = export_catalogue()
        text = dump_catalogue_yaml(catalogue)
        if file == "-":
            self.stdout.write(text, ending="")
            return
        Path(file).write_text(text, encoding="utf-8")
        counts = ", ".join(f"{len(entries)} {section}" for section, entries in catalogue.items())
        self.stdout.write(f"wrote {counts} to {file}")
