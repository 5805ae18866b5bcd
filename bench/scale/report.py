"""The scale bench's Markdown report: one row per target (bound, measured, pass/fail), then the details."""

import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime


@dataclass(frozen=True)
class Row:
    target: str
    bound: str
    measured: str
    is_pass: bool | None  # None: measured, but nothing to judge it by (e.g. the old code has no such metric)


@dataclass
class Report:
    title: str
    rows: list[Row] = field(default_factory=list)
    details: list[str] = field(default_factory=list)

    def add(self, target: str, bound: str, measured: str, is_pass: bool | None) -> None:
        self.rows.append(Row(target, bound, measured, is_pass))

    def note(self, line: str) -> None:
        self.details.append(line)

    def to_markdown(self) -> str:
        verdicts = {True: "pass", False: "**FAIL**", None: "—"}
        lines = [f"# Scale bench: {self.title}", "", "| target | bound | measured | result |", "|---|---|---|---|"]
        lines += [f"| {r.target} | {r.bound} | {r.measured} | {verdicts[r.is_pass]} |" for r in self.rows]
        lines += ["", "## Details", ""]
        lines += [f"- {line}" for line in self.details]
        return "\n".join(lines) + "\n"


def log(message: str) -> None:
    print(f"[scale {datetime.now(UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)
