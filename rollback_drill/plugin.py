"""The pytest plugin (entry point `pytest11`): options, markers, fixtures and the guards that
keep a verify run read-only and a drill off anything it did not start itself."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from rollback_drill import proc, record
from rollback_drill.spec import LoadedStack, SpecError, load_stack
from rollback_drill.stack.select import CHOICES, backends_for, docker_available, make_stack
from rollback_drill.tools import PROJECT_ROOT

if TYPE_CHECKING:  # the drill engine loads when a drill runs, not on every pytest start
    from rollback_drill.drill import DrillOutcome
    from rollback_drill.stack.base import Stack

pytest_plugins = ["rollback_drill.verify_plugin"]  # --target, the verify suite's fixtures

MARKERS = {
    "drill": "a rollback drill: spins up a stack, breaks it, rolls it back, verifies",
    "verify": "a read-only verification of a live target (needs --target FILE)",
    "emergency": "runbook: Emergency Rollback (Critical Issues)",
    "planned": "runbook: Planned Rollback (Non-Critical Issues)",
    "database": "runbook: Database Rollback (MongoDB)",
    "redis_rollback": "runbook: Database Rollback (Redis)",
    "contract": "runbook: Smart Contract Rollback",
    "service": "runbook: Service-Specific Rollback",
    "configuration": "runbook: Configuration Rollback (env, nginx, SSL)",
    "staging": "runbook: Staging Environment Rollback",
    "automation": "runbook: Rollback Automation (auto-rollback.sh)",
}
DEFAULT_STACK = PROJECT_ROOT / "fixtures" / "safepsy" / "stack.yaml"
outcomes_key = pytest.StashKey["list[DrillOutcome]"]()
entries_key = pytest.StashKey[list[record.DrillEntry]]()
test_outcomes_key = pytest.StashKey[dict[str, str]]()
started_key = pytest.StashKey[float]()
written_key = pytest.StashKey[record.WrittenRecord]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("rollback-drill")
    group.addoption(
        "--stack-file", default=None, help=f"stack file for drills (default {DEFAULT_STACK})"
    )
    group.addoption(
        "--stack-backend",
        default="auto",
        choices=list(CHOICES),
        help="where drills run the stack: local processes, docker containers, or auto",
    )
    group.addoption(
        "--compose-file",
        default=None,
        help="bring this docker-compose file up for the session (compose v1) before verifying",
    )
    group.addoption("--compose-project", default=None, help="compose project name")
    group.addoption(
        "--from-release", default=None, help="the release to roll back from (default: newest)"
    )
    group.addoption(
        "--to-release", default=None, help="the release to roll back to (default: its previous)"
    )
    group.addoption(
        "--seed-users", type=int, default=None, help="users to seed (default: the stack file's)"
    )
    group.addoption(
        "--drill-artifacts",
        default=str(PROJECT_ROOT / "reports" / "artifacts"),
        help="where drills keep preserved logs, backups and records",
    )
    group.addoption(
        "--drill-records",
        default=str(record.DEFAULT_RECORDS),
        help="where the run's drill record (JSON, schema rollback-drill/record/1) is written",
    )
    group.addoption(
        "--drill-run-id", default=None, help="id of this run in its drill record (default: random)"
    )
    group.addoption(
        "--drill-invocation",
        default="pytest",
        help="what started the run, for the record (the CLI sets run or certify)",
    )


def pytest_configure(config: pytest.Config) -> None:
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")
    config.stash[outcomes_key] = []
    config.stash[entries_key] = []
    config.stash[test_outcomes_key] = {}
    config.stash[started_key] = time.time()


def pytest_report_header(config: pytest.Config) -> list[str]:
    return [
        f"rollback-drill: stack {config.getoption('--stack-file') or DEFAULT_STACK}, "
        f"backend {config.getoption('--stack-backend')}"
    ]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Guard: with --target, only verify tests may run - a drill must never touch a live target."""
    if not config.getoption("--target"):
        return
    for item in items:
        if item.get_closest_marker("drill") is not None:
            item.add_marker(
                pytest.mark.skip(reason="drills never run against a --target (live environment)")
            )


@pytest.fixture(scope="session")
def stack_file(pytestconfig: pytest.Config) -> LoadedStack:
    path = Path(pytestconfig.getoption("--stack-file") or DEFAULT_STACK)
    try:
        return load_stack(path)
    except SpecError as exc:
        raise pytest.UsageError(str(exc)) from None


@pytest.fixture(scope="session")
def release_pair(pytestconfig: pytest.Config, stack_file: LoadedStack) -> tuple[str, str]:
    """(bad, good): the release a drill deploys and the one it rolls back to."""
    bad = pytestconfig.getoption("--from-release")
    if bad is None:
        candidates = [r for r in stack_file.releases.values() if r.previous]
        if not candidates:
            raise pytest.UsageError(
                f"{stack_file.path}: no release names a previous one to roll back to"
            )
        bad = candidates[-1].version
    good = pytestconfig.getoption("--to-release") or stack_file.release(bad).previous
    if good is None:
        raise pytest.UsageError(f"release {bad} names no previous release: give --to-release")
    stack_file.release(good)
    return bad, good


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A drill runs once per backend the --stack-backend choice means on this machine."""
    if "drill_stack" in metafunc.fixturenames:
        backends = backends_for(metafunc.config.getoption("--stack-backend"))
        metafunc.parametrize("stack_backend", backends, indirect=True)


@pytest.fixture
def stack_backend(request: pytest.FixtureRequest) -> str:
    return str(getattr(request, "param", "local"))


@pytest.fixture
def drill_stack(
    pytestconfig: pytest.Config,
    stack_file: LoadedStack,
    release_pair: tuple[str, str],
    stack_backend: str,
) -> Iterator[Stack]:
    """A fresh stack at the good release, torn down whatever happens to the test."""
    stack = make_stack(stack_backend, stack_file, seed_users=pytestconfig.getoption("--seed-users"))
    with stack.running(release_pair[1]) as running:
        yield running


@pytest.fixture
def drill_artifacts(pytestconfig: pytest.Config, request: pytest.FixtureRequest) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    path = (
        Path(pytestconfig.getoption("--drill-artifacts"))
        / f"{time.strftime('%Y%m%d-%H%M%S')}-{safe}"
    )
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def record_drill(
    pytestconfig: pytest.Config, stack_file: LoadedStack, request: pytest.FixtureRequest
) -> Iterator[list[DrillOutcome]]:
    """Drills append their outcome here; the terminal summary prints them and the drill record
    written at session end holds them."""
    collected: list[DrillOutcome] = []
    yield collected
    pytestconfig.stash[outcomes_key].extend(collected)
    pytestconfig.stash[entries_key].extend(
        record.DrillEntry(o, stack_file, request.node.nodeid) for o in collected
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Remember pytest's verdict per test for the record: a failure in any phase wins."""
    report = yield
    outcomes = item.config.stash.get(test_outcomes_key, {})
    relevant = report.failed or report.when == "call" or report.outcome == "skipped"
    if relevant and outcomes.get(report.nodeid) != "failed":
        outcomes[report.nodeid] = report.outcome
    return report


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Write the run's drill record (only when drills ran)."""
    config = session.config
    entries = config.stash.get(entries_key, [])
    if not entries:
        return
    data = record.build(
        entries,
        run_id=config.getoption("--drill-run-id") or record.new_run_id(),
        started=config.stash.get(started_key, time.time()),
        finished=time.time(),
        invocation=config.getoption("--drill-invocation"),
        args=[str(a) for a in config.invocation_params.args],
        exit_status=int(exitstatus),
        test_outcomes=config.stash.get(test_outcomes_key, {}),
    )
    config.stash[written_key] = record.write(data, Path(config.getoption("--drill-records")))


@pytest.fixture(scope="session")
def compose_services(pytestconfig: pytest.Config) -> Iterator[object | None]:
    """With --compose-file: the compose project, up for the session (pytest-docker)."""
    file = pytestconfig.getoption("--compose-file")
    if not file:
        yield None
        return
    from rollback_drill.compose import compose_up, project_name

    project = pytestconfig.getoption("--compose-project") or project_name()
    with compose_up(Path(file), project) as services:
        yield services


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    outcomes = config.stash.get(outcomes_key, [])
    if not outcomes:
        return
    terminalreporter.section("rollback drills")
    for o in outcomes:
        ttr = f"{o.verdict.time_to_recover_s:.2f} s" if o.verdict else "n/a"
        phases = ", ".join(f"{k} {v:.2f} s" for k, v in o.timeline.phases().items())
        state = "PASS" if o.passed else "FAIL"
        terminalreporter.write_line(
            f"{state} {o.procedure.name} [{o.backend}] {o.bad_release} -> {o.good_release}: "
            f"time-to-recover {ttr} (budget {o.budget.budget_s:.0f} s, {o.budget.severity}); "
            f"{phases}"
        )
        if o.failure:
            terminalreporter.write_line(f"     {o.failure.splitlines()[0]}")
    written = config.stash.get(written_key, None)
    if written is not None:
        terminalreporter.write_line(f"drill record: {written.path} (sha256 {written.sha256})")


def pytest_sessionstart(session: pytest.Session) -> None:
    """Sweep what an earlier, killed run left behind before starting anything new."""
    if session.config.getoption("--target"):
        return  # a verify run starts nothing, and must not spend its budget on a docker sweep
    if os.environ.get("ROLLBACK_DRILL_NO_SWEEP") != "1":
        proc.sweep_orphans()
        if docker_available():
            from rollback_drill.stack.docker import sweep_containers

            sweep_containers()
