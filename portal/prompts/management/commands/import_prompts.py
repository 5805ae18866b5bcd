import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from portal.prompts import documents, services

MAX_FILE_BYTES = 50 * 1024 * 1024


class Command(BaseCommand):
    help = (
        "Make the prompt templates say what a YAML file (from export_prompts) says: idempotent, a changed text "
        "becomes a new version, all or nothing. Acts as the operator."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", help="the YAML file, or - for stdin")

    def handle(self, *args, path, **options):
        text = self._read(path)
        actor = services.Operator("manage.py import_prompts")
        try:
            result = documents.import_document(documents.load(text), actor=actor)
        except documents.ImportFailed as failed:
            for problem in failed.problems:
                self.stderr.write(problem)
            raise CommandError(f"nothing imported: {len(failed.problems)} problem(s)") from None
        for slug in result.created:
            self.stdout.write(f"created {slug}")
        for name in result.versioned:
            self.stdout.write(f"new version {name}")
        for name in result.published:
            self.stdout.write(f"published {name}")
        self.stdout.write(result.summary())

    def _read(self, path: str) -> str:
        if path == "-":
            return sys.stdin.read()
        file = Path(path)
        if not file.is_file():
            raise CommandError(f"no file {path}")
        if file.stat().st_size > MAX_FILE_BYTES:
            raise CommandError(f"{path} is larger than {MAX_FILE_BYTES} bytes")
        try:
            return file.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise CommandError(f"{path} is not UTF-8 text") from None
