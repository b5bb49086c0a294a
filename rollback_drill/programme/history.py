"""`rollback-drill history`: the trend of the drills and the calendar, from the drill records.

The records, not the Allure history, are the source: they hold time-to-recover and budget per
drill in a stable schema, survive a deleted report, and are what auditors are given. The trend
compares like with like: a drill's runs are grouped by its backend and the data volume it ran
with (seeded users), so a drill on 50 000 users is not read as a regression of the same drill
on 200. Records before schema 3 carry no volume: they form their own group.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from rollback_drill.evidence import record
from rollback_drill.files.drillrecord import RunRecord
from rollback_drill.files.programmespec import CadenceSpec
from rollback_drill.programme import cadence

OUTCOME_TEXT = {"passed": "PASS", "failed": "FAIL", "over_budget": "OVER BUDGET"}


@dataclass(frozen=True)
class Row:
    started_utc: str
    run_id: str
    invocation: str
    drill: str
    backend: str
    releases: str
    outcome: str
    ttr_s: float | None
    budget_s: float
    name: str = ""  # the drill's own name (a procedure has several drills)
    cadence: str | None = None
    seed_users: int | None = None  # None: a record from before schema 3
    documents: tuple[tuple[str, int], ...] = ()

    @property
    def key(self) -> tuple[str, str, str, int | None]:
        return (self.name or self.drill, self.backend, self.releases, self.seed_users)

    @property
    def volume(self) -> str:
        return "-" if self.seed_users is None else f"{self.seed_users} users"


def rows(records: Sequence[tuple[Path, RunRecord]]) -> list[Row]:
    out: list[Row] = []
    for _, data in records:
        for d in data.drills:
            volume = d.data_volume
            out.append(
                Row(
                    started_utc=d.started_utc,
                    run_id=data.run_id,
                    invocation=data.invocation.command,
                    drill=d.procedure,
                    backend=d.backend,
                    releases=f"{d.bad_release} -> {d.good_release}",
                    outcome=OUTCOME_TEXT[d.outcome],
                    ttr_s=d.time_to_recover_s,
                    budget_s=d.budget_s,
                    name=d.name,
                    cadence=data.cadence,
                    seed_users=volume.seed_users if volume else None,
                    documents=tuple(sorted(volume.documents.items())) if volume else (),
                )
            )
    return out


def _when(iso: str) -> str:
    try:
        return datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S.%fZ").strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return iso


def _ttr(row: Row) -> str:
    if row.ttr_s is None:  # never recovered (failed, or cut off when its budget ran out)
        return f"- / {row.budget_s:.0f} s"
    return f"{row.ttr_s:.2f} s / {row.budget_s:.0f} s ({100 * row.ttr_s / row.budget_s:.1f} %)"


def table(items: Sequence[Row]) -> str:
    """A plain-text table: readable in a terminal, a CI log and an e-mail alike."""
    header = ["run (UTC)", "run id", "via", "cadence", "drill", "backend", "volume", "releases"]
    header += ["outcome", "TTR / budget"]
    body = [
        (
            _when(r.started_utc),
            r.run_id,
            r.invocation,
            r.cadence or "-",
            r.drill,
            r.backend,
            r.volume,
            r.releases,
            r.outcome,
            _ttr(r),
        )
        for r in items
    ]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(b) for b in body)])


def trend(items: Sequence[Row]) -> list[str]:
    """Per drill, backend, data volume and release pair: runs, pass rate, TTR median and the
    last change, within the group only."""
    lines = []
    groups: dict[tuple[str, str, str, int | None], list[Row]] = {}
    for r in items:
        groups.setdefault(r.key, []).append(r)
    for (drill, backend, releases, seed_users), group in groups.items():
        passed = sum(1 for r in group if r.outcome == "PASS")
        ttrs = [r.ttr_s for r in group if r.ttr_s is not None]
        runs = f"{len(group)} run{'s' if len(group) != 1 else ''}"
        where = backend if seed_users is None else f"{backend}, {seed_users} users"
        text = f"{drill} [{where}] {releases}: {runs}, {passed} passed"
        if ttrs:
            text += f", TTR median {statistics.median(ttrs):.2f} s (min {min(ttrs):.2f}, "
            text += f"max {max(ttrs):.2f})"
        if len(ttrs) >= 2:
            delta = ttrs[-1] - ttrs[-2]
            text += f", last run {'+' if delta >= 0 else ''}{delta:.2f} s vs the one before"
        if group[-1].documents:
            text += "; documents " + ", ".join(f"{k} {v}" for k, v in group[-1].documents)
        lines.append(text)
    return lines


def render(
    directory: Path,
    *,
    limit: int | None = None,
    drill: str | None = None,
    cadences: dict[str, CadenceSpec] | None = None,
    now: datetime | None = None,
) -> str:
    records, problems = record.load_all(directory)
    items = [r for r in rows(records) if drill is None or r.drill == drill]
    if limit is not None:
        items = items[-limit:]
    if not items:
        text = f"no drill records in {directory}: run `rollback-drill run` first"
    else:
        text = "\n".join(
            [
                f"{len(items)} drill(s) from {len(records)} run record(s) in {directory}",
                "",
                table(items),
                "",
                "trend (by drill, backend and data volume):",
                *(f"  {t}" for t in trend(items)),
            ]
        )
    if cadences:
        text += "\n\ncadences (a passing `rollback-drill run --cadence NAME` within its period):"
        text += "".join(f"\n  {s.explain()}" for s in cadence.statuses(records, cadences, now))
    if problems:
        text += "\n\nskipped:\n" + "\n".join(f"  {p}" for p in problems)
    return text


__all__ = ["Row", "render", "rows", "table", "trend"]
