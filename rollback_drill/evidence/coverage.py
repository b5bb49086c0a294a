"""Runbook coverage: which of the runbook's commands a drill step or check performs, which none
does, and which steps or checks quote a command the runbook no longer has (drift).

The runbook's "Documentation Updates" asks that it be kept current after each rollback; a
drill suite that silently drifts from it certifies a procedure nobody follows any more. So:
every command in the runbook's shell code blocks is listed under its heading path; a step
covers a command when its procedure's `runbook_section` names that heading (or one above it)
and its `Step.runbook` quotes the command (whitespace aside; several commands in one step are
separated by `;`); a step command that appears nowhere in the runbook is drifted. The checks
every drill's verify phase runs (and the verify suite runs against a live target) count the same
way, by their `Check.runbook` and `Check.runbook_section`: they are the runbook's "Rollback
Verification".

Procedures are found, not listed: every module under `rollback_drill.procedures` is imported
and every `Procedure` in it (or in a list, tuple or dict in it) is collected, so a procedure
added in a new module counts without touching this file. Shell plumbing (`cd DIR` alone,
`echo`, `set`, `if`/`fi`, `exit`, variable assignments) is listed apart and not counted: no
step performs it, it only carries the commands that matter.

The runbook's shell blocks are parsed by `evidence.runbookshell`; this module finds the
procedures and matches their steps and the verify checks to the commands.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import pkgutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rollback_drill.checks.result import Check
from rollback_drill.evidence.runbookshell import RunbookCommand, parse_runbook, pieces
from rollback_drill.steps.procedure import Procedure

# -- the procedures, found ----------------------------------------------------------------------


def _procedures_in(value: Any) -> Iterator[Procedure]:
    if isinstance(value, Procedure):
        yield value
    elif isinstance(value, list | tuple):
        yield from (v for v in value if isinstance(v, Procedure))
    elif isinstance(value, dict):
        yield from (v for v in value.values() if isinstance(v, Procedure))


def discover() -> tuple[list[Procedure], list[str]]:
    """Every Procedure in every module under rollback_drill.procedures, each once, and a line
    per module that could not be imported (a broken module is not silently uncovered)."""
    import rollback_drill.procedures as package

    found: dict[int, Procedure] = {}
    problems: list[str] = []
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        try:
            module = importlib.import_module(info.name)
        except Exception as exc:
            problems.append(f"{info.name}: cannot import ({type(exc).__name__}: {exc})")
            continue
        for value in vars(module).values():
            for procedure in _procedures_in(value):
                found.setdefault(id(procedure), procedure)
    return sorted(found.values(), key=lambda p: p.name), problems


# -- matching -----------------------------------------------------------------------------------


def verify_checks() -> list[Check]:
    """The checks every drill's verify phase runs: the verify suite's, and its monitoring
    watch."""
    from rollback_drill.checks import ALL_CHECKS
    from rollback_drill.engine.recovery import RECOVERED

    return [*ALL_CHECKS, RECOVERED]


def _heading(text: str) -> str:
    return " ".join(text.lower().split())


def in_section(runbook_section: str, path: Iterable[str]) -> bool:
    """True when the procedure's section ("Service-Specific Rollback > Frontend Rollback")
    names these headings, or headings above them, as a contiguous run of the path."""
    want = [_heading(p) for p in runbook_section.split(">") if p.strip()]
    have = [_heading(h) for h in path]
    return bool(want) and any(
        have[i : i + len(want)] == want for i in range(len(have) - len(want) + 1)
    )


def _contains(haystack: list[str], needle: list[str]) -> bool:
    return any(haystack[i : i + len(needle)] == needle for i in range(len(haystack) + 1))


@dataclass(frozen=True)
class StepRef:
    procedure: str
    section: str
    number: int
    step: str
    runbook: str
    check: bool = False  # a verify check, not a procedure's step

    @property
    def label(self) -> str:
        if self.check:
            return f"verify check {self.step}"
        return f"{self.procedure} step {self.number} ({self.step})"


@dataclass(frozen=True)
class CommandCoverage:
    command: RunbookCommand
    performed_by: tuple[StepRef, ...]

    @property
    def covered(self) -> bool:
        return bool(self.performed_by)


@dataclass(frozen=True)
class Drift:
    step: StepRef
    command: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"step": self.step.label, "command": self.command, "reason": self.reason}


@dataclass(frozen=True)
class Coverage:
    runbook: Path
    sha256: str
    commands: tuple[CommandCoverage, ...]  # every counted command, in the runbook's order
    plumbing: tuple[RunbookCommand, ...]
    drifted: tuple[Drift, ...]  # step commands the runbook does not have (anywhere)
    elsewhere: tuple[Drift, ...]  # step commands the runbook has, but not in its section
    procedures: tuple[str, ...]
    problems: tuple[str, ...]  # modules that could not be imported

    @property
    def total(self) -> int:
        return len(self.commands)

    @property
    def covered(self) -> int:
        return sum(1 for c in self.commands if c.covered)

    @property
    def percent(self) -> float:
        return round(100 * self.covered / self.total, 1) if self.total else 0.0

    @property
    def uncovered(self) -> list[RunbookCommand]:
        return [c.command for c in self.commands if not c.covered]

    @property
    def clean(self) -> bool:
        """No drift and every procedure module imported."""
        return not self.drifted and not self.problems

    def figure(self) -> str:
        return f"{self.covered} of {self.total} runbook commands ({self.percent:.1f} %)"

    def of_section(self, runbook_section: str) -> tuple[int, int]:
        """Covered and total commands under one procedure's section."""
        mine = [c for c in self.commands if in_section(runbook_section, c.command.section)]
        return sum(1 for c in mine if c.covered), len(mine)

    def to_json(self) -> dict[str, Any]:
        return {
            "runbook": {"path": str(self.runbook), "sha256": self.sha256},
            "total": self.total,
            "covered": self.covered,
            "percent": self.percent,
            "procedures": list(self.procedures),
            "uncovered": [
                {"section": c.where, "command": c.text, "line": c.line} for c in self.uncovered
            ],
            "drifted": [d.to_json() for d in self.drifted],
            "problems": list(self.problems),
        }


def measure(
    runbook: Path, procedures: list[Procedure] | None = None, checks: list[Check] | None = None
) -> Coverage:
    """Coverage of the runbook file by these procedures and checks (default: every procedure
    discovered and the verify phase's checks; given procedures alone, no checks)."""
    problems: list[str] = []
    if procedures is None:
        procedures, problems = discover()
        checks = verify_checks() if checks is None else checks
    data = runbook.read_bytes()
    commands = parse_runbook(data.decode("utf-8", errors="replace"))
    steps = [
        StepRef(p.name, p.runbook_section, n, s.name, s.runbook)
        for p in procedures
        for n, s in enumerate(p.steps, 1)
        if s.runbook.strip()
    ] + [
        StepRef("verify", c.runbook_section, n, c.name, c.runbook, check=True)
        for n, c in enumerate(checks or [], 1)
        if c.runbook.strip()
    ]
    quoted = {id(s): pieces(s.runbook) for s in steps}
    counted = [c for c in commands if not c.plumbing]
    covered = tuple(
        CommandCoverage(
            c,
            tuple(
                s
                for s in steps
                if in_section(s.section, c.section) and _contains(quoted[id(s)], pieces(c.text))
            ),
        )
        for c in counted
    )
    drifted: list[Drift] = []
    elsewhere: list[Drift] = []
    for s in steps:
        if not any(in_section(s.section, c.section) for c in commands):
            drifted.append(Drift(s, s.runbook, f"section {s.section!r} is not in the runbook"))
            continue
        for piece in quoted[id(s)]:
            homes = [c for c in commands if piece in pieces(c.text)]
            if not homes:
                drifted.append(Drift(s, piece, "no longer in the runbook"))
            elif not any(in_section(s.section, c.section) for c in homes):
                elsewhere.append(Drift(s, piece, f"quoted from {homes[0].where}"))
    return Coverage(
        runbook,
        hashlib.sha256(data).hexdigest(),
        covered,
        tuple(c for c in commands if c.plumbing),
        tuple(drifted),
        tuple(elsewhere),
        tuple(p.name for p in procedures),
        tuple(problems),
    )


@functools.cache
def _measured(runbook: Path, sha256: str) -> Coverage:
    return measure(runbook)


def of_runbook(runbook: Path) -> Coverage:
    """`measure` once per runbook content (the report asks for every drill)."""
    return _measured(runbook.resolve(), hashlib.sha256(runbook.read_bytes()).hexdigest())


def render(cov: Coverage, *, shown_path: str | None = None) -> str:
    """The coverage as a person reads it: per section, each command and the steps doing it."""
    lines = [f"runbook: {shown_path or cov.runbook} (sha256 {cov.sha256[:16]})"]
    lines.append(f"procedures: {', '.join(cov.procedures) or 'none found'}")
    section: str | None = None
    for item in cov.commands:
        if item.command.where != section:
            section = item.command.where
            lines += ["", section]
        state = "covered  " if item.covered else "UNCOVERED"
        by = "; ".join(s.label for s in item.performed_by)
        lines.append(f"  {state}  {item.command.text}")
        if by:
            lines.append(f"               <- {by}")
    lines += ["", f"covered {cov.figure()}; {len(cov.uncovered)} uncovered"]
    if cov.drifted:
        lines += ["", f"DRIFTED: {len(cov.drifted)} step command(s) the runbook does not have:"]
        lines += [f"  {d.step.label}: {d.command!r} - {d.reason}" for d in cov.drifted]
    else:
        lines.append("drift: none (every step's and check's runbook command is in the runbook)")
    if cov.elsewhere:
        lines += ["", "quoted from another section (not counted for it):"]
        lines += [f"  {d.step.label}: {d.command!r} - {d.reason}" for d in cov.elsewhere]
    if cov.plumbing:
        shown = ", ".join(sorted({c.text.split()[0] for c in cov.plumbing}))
        lines.append(f"not counted: {len(cov.plumbing)} lines of shell plumbing ({shown})")
    if cov.problems:
        lines += ["", "PROCEDURE MODULES NOT IMPORTED (their steps are not counted):"]
        lines += [f"  {p}" for p in cov.problems]
    return "\n".join(lines)


__all__ = [
    "CommandCoverage",
    "Coverage",
    "Drift",
    "StepRef",
    "discover",
    "in_section",
    "measure",
    "of_runbook",
    "render",
    "verify_checks",
]
