from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from routing import services
from routing.engine import learned, learned_cv
from routing.models import ModelAlias

MAX_FILE_BYTES = 200_000_000


class Command(BaseCommand):
    help = (
        'Train ALIAS\'s learned router from FILE.jsonl (lines {"prompt": ..., "scores": {deployment: 0..1}}) '
        "and store it as the alias's next version; every gateway process picks it up without a restart. "
        "Prints the cross-validated cost/quality curve and the operating point stored with the version."
    )
    # The curve's points printed (every point is stored); the recommended one is always printed.
    shown_floors = (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
    shown_trade_offs = (0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5)

    def add_arguments(self, parser):
        parser.add_argument("alias")
        parser.add_argument("file", type=Path)
        parser.add_argument("--seed", type=int, default=learned.SEED, help=f"shuffle seed (default {learned.SEED})")
        parser.add_argument(
            "--keep",
            type=float,
            default=learned_cv.KEEP,
            help="the recommended point keeps this share of the best deployment's cross-validated quality, "
            "plus the nested margin, by one standard error "
            f"(0.5 to 1; default {learned_cv.KEEP})",
        )

    def handle(self, *args, alias, file, seed, keep, **options):
        found = ModelAlias.objects.filter(name=alias).first()
        if found is None:
            raise CommandError(f"no alias named {alias!r}")
        if not 0 <= seed <= 2**31 - 1:
            raise CommandError("--seed must be from 0 to 2147483647")
        if not 0.5 <= keep <= 1:  # also refuses nan
            raise CommandError("--keep must be from 0.5 to 1")
        try:
            if file.stat().st_size > MAX_FILE_BYTES:
                raise CommandError(f"{file} is larger than {MAX_FILE_BYTES:,} bytes")
            with file.open(encoding="utf-8") as lines:
                router = services.train_router(alias=found, lines=lines, seed=seed, keep=keep)
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
        validation = learned.from_bytes(bytes(router.weights)).cross_validation
        if validation is None:
            self.stdout.write(
                f"no cross-validation: fewer than {learned_cv.MIN_EXAMPLES} lines score every deployment; "
                "with no floor and no trade-off the alias takes the best predicted"
            )
            return
        self.stdout.write(
            f"cross-validated ({validation.folds} folds, {validation.examples} lines scoring every deployment; "
            f"the best alone: {validation.best} {validation.best_quality:.3f}):"
        )
        shortfalls = ", ".join(f"{s:+.1%}" for s in validation.shortfalls) or "none"
        self.stdout.write(
            f"margin: {validation.margin:.1%} (nested: the point chosen without each fold, less its quality share "
            f"on that fold: {shortfalls}); the point must keep {validation.keep + validation.margin:.1%}"
        )
        chosen = validation.recommended
        for point in validation.curve:
            if point == chosen or point.floor in self.shown_floors or point.trade_off in self.shown_trade_offs:
                self.stdout.write(
                    f"  {point.label:<15} quality {point.quality:.3f} ({point.quality_share:.1%} of the best's), "
                    f"cost {point.cost_share:.1%} of the best's" + ("  <- recommended" if point == chosen else "")
                )
        if chosen is None:
            self.stdout.write(
                f"recommended: none (no point keeps {validation.keep:.0%} + the {validation.margin:.1%} margin of "
                f"{validation.best}'s quality by one standard error); with no floor and no trade-off the alias "
                "takes the best predicted"
            )
        else:
            self.stdout.write(
                f"recommended: {chosen.label} (the cheapest point keeping {validation.keep:.0%} + the "
                f"{validation.margin:.1%} margin of {validation.best}'s quality by one standard error); the alias "
                "routes with it unless it sets min_quality or learned.trade_off, or the call sends "
                "x-tollway-min-quality"
            )
