"""The runbook's Regular Rollback Drills as a calendar: each cadence (monthly rollback exercises,
quarterly disaster-recovery tests, annual business-continuity drills) is a pytest marker
expression over the drills' markers and a period, both in the stack file's `cadences`.
`rollback-drill run --cadence NAME` runs its suite and the record carries the name;
`history` says when each cadence last passed, and `--check-overdue` fails when one has no
passing run within its period, so a scheduled CI job can alert on it.

A cadence is satisfied only by a passing run of that cadence (record verdict `pass`: every
selected drill passed within budget): a run of other drills, or a failed one, does not count.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rollback_drill.files.drillrecord import RunRecord
from rollback_drill.files.programmespec import CadenceSpec
from rollback_drill.files.spec import LoadedStack
from rollback_drill.process.errors import SpecError

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OPERATORS = {"and", "or", "not"}


def selection(loaded: LoadedStack, name: str) -> CadenceSpec:
    """The cadence's suite, its marker expression checked against the drills' markers: a
    misspelt marker would select nothing and the cadence would never be run."""
    from rollback_drill.plugin.options import MARKERS

    cadences = loaded.spec.cadences
    if name not in cadences:
        raise SpecError(
            f"{loaded.path}: cadences: no cadence {name!r}; expected one of {sorted(cadences)}"
        )
    spec = cadences[name]
    unknown = sorted({w for w in _WORD.findall(spec.select) if w not in _OPERATORS} - set(MARKERS))
    if unknown:
        raise SpecError(
            f"{loaded.path}: cadences.{name}.select: unknown marker(s) {unknown} in "
            f"{spec.select!r}; expected an expression over {sorted(MARKERS)}"
        )
    return spec


def _parse_utc(text: str) -> datetime | None:
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class CadenceStatus:
    name: str
    period_days: int
    last_pass: datetime | None
    last_pass_run: str | None
    last_run: datetime | None  # any run of this cadence, passed or not
    now: datetime

    @property
    def overdue(self) -> bool:
        return self.last_pass is None or self.now - self.last_pass > timedelta(
            days=self.period_days
        )

    def explain(self) -> str:
        head = f"{self.name:<10} every {self.period_days:>3} days: "
        if self.last_pass is None:
            tried = (
                f" (last run {self.last_run:%Y-%m-%d %H:%M} UTC did not pass)"
                if self.last_run
                else ""
            )
            text = head + "never passed" + tried
        else:
            age = (self.now - self.last_pass).total_seconds() / 86400
            text = (
                head + f"last passed {self.last_pass:%Y-%m-%d %H:%M} UTC ({age:.1f} days ago, "
                f"run {self.last_pass_run})"
            )
        return text + ("  OVERDUE" if self.overdue else "  ok")


def statuses(
    records: Sequence[tuple[Path, RunRecord]],
    cadences: dict[str, CadenceSpec],
    now: datetime | None = None,
) -> list[CadenceStatus]:
    """When each cadence last passed, from the drill records (schema 3 carries the cadence)."""
    moment = now or datetime.now(UTC)
    found = []
    for name, spec in cadences.items():
        runs = [data for _, data in records if data.cadence == name]
        passes = [d for d in runs if d.summary.verdict == "pass"]

        def when(data: RunRecord) -> datetime | None:
            return _parse_utc(data.finished_utc)

        passed_at = [(t, d) for d in passes if (t := when(d)) is not None and t <= moment]
        last = max(passed_at, key=lambda item: item[0], default=None)
        run_times = [t for d in runs if (t := when(d)) is not None]
        found.append(
            CadenceStatus(
                name,
                spec.period_days,
                last[0] if last else None,
                last[1].run_id if last else None,
                max(run_times, default=None),
                moment,
            )
        )
    return found


__all__ = ["CadenceStatus", "selection", "statuses"]
