"""`manage.py train_router` cross-validates on the training file: it prints the cost/quality curve and the
recommended operating point, stores both with the version (priced from the alias's deployments), the snapshot's
model carries them, and `--keep` sets the target."""

import json
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from routing.control_plane import loader
from routing.engine import learned
from routing.models import Deployment, LearnedRouter, ModelAlias
from tests.factories import DeploymentFactory, make_alias

pytestmark = pytest.mark.django_db

LINES = [
    {"prompt": f"Fix this SQL query {n}: select the orders of customer {n}", "scores": {"cheap": 1, "premium": 1}}
    for n in range(30)
] + [{"prompt": f"Write a sonnet about the sea, poem {n}", "scores": {"cheap": 0, "premium": 1}} for n in range(30)]


def alias_priced(cheap_per_1m: str) -> ModelAlias:
    premium = DeploymentFactory(name="premium", input_per_1m=Decimal(10), output_per_1m=Decimal(10))
    cheap = DeploymentFactory(name="cheap", input_per_1m=Decimal(cheap_per_1m), output_per_1m=Decimal(cheap_per_1m))
    alias = make_alias("smart", premium, cheap)
    alias.routing = {"strategy": "learned"}
    alias.save()
    return alias


def train(tmp_path, *args) -> str:
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in LINES))
    out = StringIO()
    call_command("train_router", "smart", str(path), *args, stdout=out)
    return out.getvalue()


def stored_validation() -> learned.CrossValidation:
    return learned.from_bytes(bytes(LearnedRouter.objects.get().weights)).cross_validation


def test_it_prints_the_cross_validated_curve_and_the_recommended_point(tmp_path):
    alias_priced("0.2")

    said = train(tmp_path)

    validation = stored_validation()
    chosen = validation.recommended
    assert "cross-validated (5 folds, 60 lines scoring every deployment; the best alone: premium 1.000):" in said
    assert "  floor 0.7       quality 1.000 (100.0% of the best's), cost " in said
    assert f"  {chosen.label:<15} quality 1.000" in said and said.count("<- recommended") == 1
    assert f"margin: {validation.margin:.1%} (nested: the point chosen without each fold" in said
    assert f"recommended: {chosen.label} (the cheapest point keeping 95% + the {validation.margin:.1%} margin" in said


def test_the_curve_is_priced_from_the_alias_deployments(tmp_path):
    alias_priced("0.2")
    train(tmp_path)
    cheap_share = stored_validation().recommended.cost_share
    LearnedRouter.objects.all().delete()
    Deployment.objects.filter(name="cheap").update(input_per_1m=5, output_per_1m=5)

    train(tmp_path)

    # Half the lines go to cheap: about (0.2 + 10) / 20 of premium's cost, then (5 + 10) / 20.
    assert 0.5 < cheap_share < 0.55
    assert 0.74 < stored_validation().recommended.cost_share < 0.78


def test_the_snapshot_model_carries_the_recommended_point_and_the_same_file_the_same_point(tmp_path):
    alias_priced("0.2")

    train(tmp_path)
    train(tmp_path)

    first, second = (bytes(r.weights) for r in LearnedRouter.objects.order_by("version"))
    model = loader.catalogue().policies["smart"].learned.model
    assert first == second
    assert model.version == 2 and model.cross_validation == learned.from_bytes(first).cross_validation
    assert model.cross_validation.recommended is not None


def test_keep_sets_the_target(tmp_path):
    alias_priced("0.2")

    said = train(tmp_path, "--keep", "1")

    validation = stored_validation()
    assert validation.keep == 1.0
    # Every out-of-fold choice was right: 100% is kept, with no error to allow for.
    assert validation.recommended is not None and validation.recommended.quality_share_low == 1.0
    assert "keeping 100% + the 0.0% margin of premium's quality" in said


@pytest.mark.parametrize("keep", ["0.4", "1.5", "nan"])
def test_a_keep_out_of_range_is_refused(tmp_path, keep):
    alias_priced("0.2")

    with pytest.raises(CommandError, match="--keep must be from 0.5 to 1"):
        train(tmp_path, "--keep", keep)
    assert not LearnedRouter.objects.exists()


def test_a_file_too_small_to_cross_validate_is_stored_without_a_recommended_point(tmp_path):
    alias_priced("0.2")
    path = tmp_path / "few.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in LINES[:5] + LINES[-4:]))
    out = StringIO()

    call_command("train_router", "smart", str(path), stdout=out)

    assert stored_validation() is None
    assert "no cross-validation: fewer than 10 lines score every deployment" in out.getvalue()
