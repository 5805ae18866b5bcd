"""`manage.py train_router ALIAS FILE.jsonl`: each run stores the alias's next version (older ones kept), the same
file gives the same model, every line is checked first (a bad one is named by number and nothing is stored),
and the snapshot routes the alias with its latest version."""

import json

import pytest
from django.core.management import CommandError, call_command

from routing.control_plane import loader
from routing.engine import learned
from routing.models import LearnedRouter, ModelAlias
from tests.factories import DeploymentFactory, make_alias

pytestmark = pytest.mark.django_db

LINES = [{"prompt": f"Fix this SQL query {n}", "scores": {"cheap": 1.0, "premium": 1.0}} for n in range(10)] + [
    {"prompt": f"Write a sonnet, poem {n}", "scores": {"cheap": 0.0, "premium": 1.0}} for n in range(10)
]


@pytest.fixture
def alias() -> ModelAlias:
    alias = make_alias("smart", DeploymentFactory(name="premium"), DeploymentFactory(name="cheap"))
    alias.routing = {"strategy": "learned", "min_quality": 0.7}
    alias.save()
    return alias


def training_file(tmp_path, lines, name="train.jsonl"):
    path = tmp_path / name
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


def train(alias_name, path, *args) -> str:
    from io import StringIO

    out = StringIO()
    call_command("train_router", alias_name, str(path), *args, stdout=out)
    return out.getvalue()


def test_each_run_stores_the_next_version_and_keeps_the_older_ones(alias, tmp_path):
    path = training_file(tmp_path, LINES)

    said = train("smart", path)
    train("smart", path)

    assert said.startswith("smart: learned router v1 from 20 examples (premium, cheap; seed 12; ")
    routers = list(LearnedRouter.objects.filter(alias=alias).order_by("version"))
    assert [r.version for r in routers] == [1, 2]
    assert [r.examples for r in routers] == [20, 20]
    assert routers[0].deployments == ["premium", "cheap"]
    assert routers[0].size_bytes == len(bytes(routers[0].weights))


def test_the_same_file_gives_the_same_model_and_another_seed_another(alias, tmp_path):
    path = training_file(tmp_path, LINES)

    train("smart", path)
    train("smart", path)
    train("smart", path, "--seed", "7")

    first, second, reseeded = (bytes(r.weights) for r in LearnedRouter.objects.order_by("version"))
    assert first == second
    assert reseeded != first
    assert LearnedRouter.objects.get(version=1).file_sha256 == LearnedRouter.objects.get(version=3).file_sha256


def test_a_bad_file_names_every_bad_line_and_stores_nothing(alias, tmp_path):
    path = training_file(
        tmp_path,
        [
            LINES[0],
            "{oops",
            {"prompt": "hi", "scores": {"gpt-9": 1}},
            "",
            {"prompt": "hi", "scores": {"cheap": 2}},
        ],
    )

    with pytest.raises(CommandError) as refused:
        train("smart", path)

    message = str(refused.value)
    assert "line 2: not JSON" in message
    assert "line 3: scores names 'gpt-9', not one of the alias's deployments (cheap, premium)" in message
    assert "line 5: scores.cheap must be a number from 0 to 1" in message
    assert message.endswith("nothing was stored")
    assert not LearnedRouter.objects.exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "the file has no examples"), (b'{"prompt": "\xff"}\n', "is not UTF-8")],
)
def test_an_empty_or_undecodable_file_is_refused(alias, tmp_path, content, message):
    path = tmp_path / "train.jsonl"
    path.write_bytes(content)

    with pytest.raises(CommandError, match=message):
        train("smart", path)
    assert not LearnedRouter.objects.exists()


def test_an_unknown_alias_or_a_missing_file_is_refused(alias, tmp_path):
    with pytest.raises(CommandError, match="no alias named 'nope'"):
        train("nope", training_file(tmp_path, LINES))
    with pytest.raises(CommandError, match="cannot read"):
        train("smart", tmp_path / "missing.jsonl")


def test_the_catalogue_snapshot_routes_the_alias_with_its_latest_version(alias, tmp_path):
    assert loader.catalogue().policies["smart"].learned is None  # not trained: priority order

    train("smart", training_file(tmp_path, LINES))
    train("smart", training_file(tmp_path, LINES[:12], name="fewer.jsonl"))

    model = loader.catalogue().policies["smart"].learned.model
    assert isinstance(model, learned.LearnedModel)
    assert model.version == 2
    assert model.deployments == ("premium", "cheap")


def test_an_alias_that_is_not_learned_carries_no_model(alias, tmp_path):
    train("smart", training_file(tmp_path, LINES))
    alias.routing = {"strategy": "cheapest"}
    alias.save()

    assert loader.catalogue().policies["smart"].learned is None
