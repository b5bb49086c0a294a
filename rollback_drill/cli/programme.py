"""The drill programme's commands: `run` the drills, `report` them, `certify` one rollback,
and read what the runs left behind: `history` (the trend, overdue cadences) and `coverage`
(which runbook commands a drill step performs, and where a step quotes stale text).

They all drive pytest on the drills or read the records and reports it writes, so they share
the reports folder's layout; the command-line options they take are in `parser`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from rollback_drill.files.spec import load_stack
from rollback_drill.process.errors import ReportError, SpecError, ToolMissing
from rollback_drill.process.places import shipped

if TYPE_CHECKING:
    from rollback_drill.programme import merge


def _pytest(args: list[str]) -> int:
    import pytest

    return int(pytest.main(args))


def cmd_run(ns: argparse.Namespace) -> int:
    from rollback_drill.evidence import report_html as report

    reports: Path = ns.reports_dir
    results: Path = ns.alluredir or reports / "allure-results"
    report.clean_results(results)  # the report must show this run only; history keeps the past
    missing = [str(d) for d in ns.drills if not d.is_dir()]
    if missing:
        raise SpecError(f"--drills: no such folder: {', '.join(missing)}")
    args = [
        str(shipped("drills")),
        *(str(d) for d in ns.drills),
        "--alluredir",
        str(results),
        "-p",
        "no:cacheprovider",
        "--stack-file",
        str(ns.stack),
        "--stack-backend",
        ns.backend,
        "--drill-artifacts",
        str(reports / "artifacts"),
        "--drill-records",
        str(reports / "records"),
        "--drill-invocation",
        "run",
    ]
    if ns.seed_users:
        args += ["--seed-users", str(ns.seed_users)]
    args += ["--environment", ns.environment]
    if ns.cadence:
        args += _cadence_args(ns.stack, ns.cadence, ns.pytest_args)
    if ns.parallel > 1:
        args += ["-n", str(ns.parallel)]  # pytest-xdist: a stack per drill, one record
    if ns.shard:
        args += ["--shard", ns.shard]  # the plugin deselects the other shards' drills
    code = _pytest(args + ns.pytest_args)
    if ns.no_html:
        return code
    sys.stdout.flush()
    generated = _generate(results, reports)
    return code if generated == 0 else (code or generated)


def _cadence_args(stack: Path, name: str, pytest_args: list[str]) -> list[str]:
    """`-m` with the cadence's suite (the stack file's `cadences`), and the name for the record."""
    from rollback_drill.programme import cadence

    if any(a == "-m" or (a.startswith("-m") and not a.startswith("--")) for a in pytest_args):
        raise SpecError("--cadence chooses the drills by marker: do not pass -m as well")
    chosen = cadence.selection(load_stack(stack), name)
    print(f"cadence {name}: every {chosen.period_days} days, drills -m {chosen.select!r}")
    return ["-m", chosen.select, "--drill-cadence", name]


def _generate(results: Path, reports: Path, output: Path | None = None) -> int:
    from rollback_drill.evidence import report_html as report

    history = reports / "history" / "history.jsonl"
    try:
        made = report.generate_html(results, output or reports / "html", history=history)
    except (ReportError, ToolMissing) as exc:
        print(f"rollback-drill: HTML report not generated: {exc}", file=sys.stderr)
        return 1
    runs = len(history.read_text().splitlines()) if history.exists() else 0
    note = (
        "these results appended"
        if made.appended
        else "these results were already in it, not appended again"
    )
    print(f"HTML report: {made.index} ({made.seconds:.1f} s)")
    print(f"history: {note}; {runs} run(s) in {history}")
    return 0


def cmd_report(ns: argparse.Namespace) -> int:
    reports: Path = ns.reports_dir
    if ns.merge:
        from rollback_drill.programme import merge

        try:
            merged = merge.merge(ns.merge, merge.Destination.under(reports, ns.results))
        except merge.MergeRefused as exc:
            print(f"rollback-drill: merge refused: {exc}", file=sys.stderr)
            return 2
        _merged(merged)
    return _generate(ns.results or reports / "allure-results", reports, ns.output)


def _merged(merged: merge.Merged) -> None:
    summary = merged.data.summary
    print(
        f"merged {len(merged.shards)} shards: {summary.drills} drills, {summary.passed} "
        f"passed, verdict {summary.verdict}"
    )
    print(f"drill record: {merged.record.path} (sha256 {merged.record.sha256})")
    if merged.incidents_missing:
        print(f"incident documents NOT written: {merged.incidents_missing}", file=sys.stderr)


def cmd_history(ns: argparse.Namespace) -> int:
    from rollback_drill.evidence import record
    from rollback_drill.programme import cadence, history

    records = ns.records or ns.reports_dir / "records"
    cadences = load_stack(ns.stack).spec.cadences
    print(history.render(records, limit=ns.limit, drill=ns.drill, cadences=cadences))
    if not ns.check_overdue:
        return 0
    late = [s for s in cadence.statuses(record.load_all(records)[0], cadences) if s.overdue]
    print(f"\nOVERDUE: {', '.join(s.name for s in late)}" if late else "\nno cadence is overdue")
    return 1 if late else 0


def cmd_coverage(ns: argparse.Namespace) -> int:
    """Exit 1 on drift (a step quotes what the runbook no longer says) or under --fail-under;
    2 when a procedure module cannot be imported (its steps would silently not count)."""
    from rollback_drill.evidence import coverage

    loaded = load_stack(ns.stack)
    found = coverage.measure(loaded.resolve(loaded.spec.runbook))
    if ns.json:
        print(json.dumps(found.to_json(), indent=2))
    else:
        print(coverage.render(found, shown_path=loaded.spec.runbook))
    if found.problems:
        return 2
    under = ns.fail_under is not None and found.percent < ns.fail_under
    if under:
        print(f"coverage {found.percent:.1f} % is under --fail-under {ns.fail_under:g} %")
    return 1 if found.drifted or under else 0


def cmd_certify(ns: argparse.Namespace) -> int:
    from rollback_drill.programme import certify, merge

    pair = {
        "bad": ns.from_release,
        "good": ns.to_release,
        "stack": ns.stack,
        "reports": ns.reports_dir,
        "environment": ns.environment,
    }
    try:
        issued = (
            certify.from_shards(shards=ns.merge, **pair)
            if ns.merge  # the shards ran elsewhere: merge them, then judge as `run` does
            else certify.run(
                backend=ns.backend,
                seed_users=ns.seed_users,
                pytest_args=ns.pytest_args,
                **pair,
            )
        )
    except merge.MergeRefused as exc:
        print(f"rollback-drill: merge refused: {exc}", file=sys.stderr)
        return 2
    state = "CERTIFIED" if issued.verdict.certified else "NOT CERTIFIED"
    where = "" if ns.environment == "production" else f" on {ns.environment}"
    print(f"\nrollback {ns.from_release} -> {ns.to_release}{where}: {state}")
    for reason in issued.verdict.reasons:
        print(f"  - {reason}")
    print(f"certificate: {issued.markdown}\n             {issued.html}")
    if issued.record is not None:
        print(f"drill record: {issued.record} (sha256 {issued.record_sha256})")
    return 0 if issued.verdict.certified else 1
