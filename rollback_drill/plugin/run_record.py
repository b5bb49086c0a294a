"""The run's drill record, as the pytest plugin's half that writes it: the verdict of every
test, the drills each ran (gathered from pytest-xdist workers by the controller), then at the
session's end one record (schema rollback-drill/record/5), its incident documents and a line
per drill in the terminal summary. Registered by `rollback_drill.plugin.core` at configuration."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from rollback_drill.plugin import shard
from rollback_drill.process import places

if TYPE_CHECKING:  # imported where a drill's record is made: a verify run never loads it
    from rollback_drill.evidence import record

drills_key: pytest.StashKey[list[record.DrillRecord]] = pytest.StashKey()  # every drill that ran
WORKER_DRILLS = "rollback_drill_drills"  # xdist workeroutput key: a worker's drills
test_outcomes_key = pytest.StashKey[dict[str, str]]()
test_seconds_key = pytest.StashKey[dict[str, float]]()  # node id -> set-up + call + teardown
started_key = pytest.StashKey[float]()
written_key: pytest.StashKey[record.WrittenRecord] = pytest.StashKey()
incidents_key = pytest.StashKey[tuple[list[Path], str | None]]()  # written, or why not


def pytest_configure(config: pytest.Config) -> None:
    config.stash[drills_key] = []
    config.stash[test_outcomes_key] = {}
    config.stash[test_seconds_key] = {}
    config.pluginmanager.register(RunCollector(config), "rollback-drill-run-collector")
    config.stash[started_key] = time.time()


def keep(config: pytest.Config, entry: record.DrillEntry) -> None:
    """A drill that counts for the run's record (a rehearsal of a failed rollback does not)."""
    from rollback_drill.evidence import record

    config.stash[drills_key].append(record.drill_json(entry, None))


class RunCollector:
    """What the run's record needs from pytest itself: its verdict per test, and (under
    pytest-xdist, in the controller) the drills each worker ran."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """A failure in any phase wins; under xdist this runs in the controller."""
        outcomes = self.config.stash[test_outcomes_key]
        relevant = report.failed or report.when == "call" or report.outcome == "skipped"
        if relevant and outcomes.get(report.nodeid) != "failed":
            outcomes[report.nodeid] = report.outcome
        seconds = self.config.stash[test_seconds_key]
        seconds[report.nodeid] = seconds.get(report.nodeid, 0.0) + report.duration

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: object) -> None:
        """An xdist worker finished: keep the drills it ran, for the run's one record."""
        from rollback_drill.evidence import record

        drills = getattr(node, "workeroutput", {}).get(WORKER_DRILLS)
        found = json.loads(drills) if drills else []
        self.config.stash[drills_key].extend(record.DrillRecord.model_validate(d) for d in found)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Write the run's drill record (when drills ran, and always for one shard of a run: the
    merge must see every shard). An xdist worker hands its drills to the controller instead,
    so a parallel run still has one record counting each once."""
    config = session.config
    entries = config.stash.get(drills_key, [])
    workeroutput = getattr(config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput[WORKER_DRILLS] = json.dumps([d.model_dump(mode="json") for d in entries])
        return
    part = shard.of_run(config)
    if not entries and part is None:
        return
    exitstatus = int(session.exitstatus)  # as the shard plugin may have set it
    from rollback_drill.evidence import record

    data = record.build(
        entries,
        run_id=config.getoption("--drill-run-id") or record.new_run_id(),
        started=config.stash.get(started_key, time.time()),
        finished=time.time(),
        invocation=config.getoption("--drill-invocation"),
        args=[str(a) for a in config.invocation_params.args],
        exit_status=int(exitstatus),
        test_outcomes=config.stash.get(test_outcomes_key, {}),
        cadence=config.getoption("--drill-cadence"),
        runbook_coverage=record.runbook_coverage(_stack_path(config)),
        test_seconds=config.stash.get(test_seconds_key, {}),
        ran=record.source(_stack_path(config)),
        shard=part,
    )
    records = Path(config.getoption("--drill-records"))
    written = config.stash[written_key] = record.write(data, records)
    from rollback_drill.evidence import incident

    try:
        made = incident.write_all(data, written.path, records.parent / "incidents")
        config.stash[incidents_key] = (made, None)
    except Exception as exc:  # the record stands; say loudly that its documents are missing
        config.stash[incidents_key] = ([], f"{type(exc).__name__}: {exc}")


def _stack_path(config: pytest.Config) -> Path:
    return Path(config.getoption("--stack-file") or places.reference_stack())


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    """One line per drill (from the same data the record holds), then the record's path."""
    drills = config.stash.get(drills_key, [])
    if not drills or hasattr(config, "workeroutput"):
        return
    terminalreporter.section("rollback drills")
    for d in drills:
        ttr = d.time_to_recover_s
        phases = ", ".join(f"{k} {v:.2f} s" for k, v in d.phases.items())
        state = {"passed": "PASS", "over_budget": "OVER BUDGET"}.get(d.outcome, "FAIL")
        where = d.backend + ("" if d.environment == "production" else f", {d.environment}")
        terminalreporter.write_line(
            f"{state} {d.drill} [{where}] {d.bad_release} -> {d.good_release}: "
            f"time-to-recover {'n/a' if ttr is None else f'{ttr:.2f} s'} (budget "
            f"{d.budget_s:.0f} s, {d.severity}); {phases}"
        )
        if d.failure:
            terminalreporter.write_line(f"     {d.failure.splitlines()[0]}")
    written = config.stash.get(written_key, None)
    if written is not None:
        from rollback_drill.evidence import record

        terminalreporter.write_line(f"drill record: {written.path} (sha256 {written.sha256})")
        coverage = record.read(written.path).runbook_coverage
        if coverage:
            terminalreporter.write_line(
                f"runbook coverage: {coverage.covered} of {coverage.total} commands "
                f"({coverage.percent:.1f} %), {len(coverage.drifted)} drifted"
            )
    made, why_not = config.stash.get(incidents_key, ([], None))
    if made:
        terminalreporter.write_line(f"incident documents: {made[0].parent} ({len(made)})")
    if why_not:
        terminalreporter.write_line(f"incident documents NOT written: {why_not}", red=True)
