"""The README is read in a clone: every file it names must be in the repository, and none may sit outside it
(it once pointed at ../shared/, which only the authors' machine had)."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text()
# `path` spans and [text](path) links; URL paths (/v1/...) and placeholders (<kind>, {id}, *) are not files.
REFERENCES = re.findall(r"`([^`\s]+)`", README) + re.findall(r"\]\(([^)\s]+)\)", README)
TOP_LEVEL = tuple(f"{entry.name}/" for entry in REPO.iterdir() if entry.is_dir() and not entry.name.startswith("."))


def test_the_readme_names_nothing_outside_the_repository():
    assert [ref for ref in REFERENCES if ref.startswith("../") or "/../" in ref] == []


def test_every_repository_path_the_readme_names_exists():
    paths = [
        ref.split("#")[0]
        for ref in REFERENCES
        if ref.startswith(TOP_LEVEL) and not re.search(r"[<{*]", ref) and not ref.startswith(("var/", ".venv/"))
    ]

    assert len(paths) > 20  # the README does name files: a parsing slip must not pass this silently
    assert [path for path in paths if not (REPO / path).exists()] == []
