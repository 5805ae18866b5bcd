from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from routing import services
from routing.engine import learned
from routing.models import ModelAlias

MAX_FILE_BYTES = 200_000_000


class Command(BaseCommand):
    help = (
        'Train ALIAS\'s learned router from FILE.jsonl (lines {"prompt": ..., "scores": {deployment: 0..1}}) '
        "and store it as the alias's next version; every gateway process picks it up without a restart."
    )

    def add_arguments(self, parser):
        parser.add_argument("alias")
        parser.add_argument("file", type=Path)
        parser.add_argument("--seed", type=int, default=learned.SEED, help=f"shuffle seed (default {learned.SEED})")

    def handle(self, *args, alias, file, seed, **options):
        found = ModelAlias.objects.filter(name=alias).first()
        if found is None:
            raise CommandError(f"no alias named {alias!r}")
        if not 0 <= seed <= 2**31 - 1:
            raise CommandError("--seed must be from 0 to 2147483647")
        try:
            if file.stat().st_size > MAX_FILE_BYTES:
                raise CommandError(f"{file} is larger than {MAX_FILE_BYTES:,} bytes")
            with file.open(encoding="utf-8") as lines:
                router = services.train_router(alias=found, lines=lines, seed=seed)
        except OSError as exc:
            raise CommandError(f"cannot read {file}: {exc.strerror or exc}") from None
        except UnicodeDecodeError as exc:
            raise CommandError(f"{file} is not UTF-8 (byte {exc.start}); nothing was stored") from None
        except services.TrainingFileError as exc:
            raise CommandError(f"{file}: {exc}; nothing was stored") from None
        self.stdout.write(
            f"{alias}: learned router v{router.version} from {router.examples} examples "
            f"({', '.join(router.deployments)}; seed {router.seed}; {router.size_bytes:,} bytes)"
        )
