"""The pytest plugin (entry point `pytest11`): options, markers, fixtures and the guards that
keep a verify run read-only and a drill off anything it did not start itself.

Over 400 lines: pytest wants a plugin's hooks, options and fixtures registered from one
module object; the concepts behind them (run record, verify half, shards) are modules of
their own, registered from here.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import signal
import threading
import time
from collections.abc import Generator, Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import pytest

from rollback_drill.evidence import artifacts, record
from rollback_drill.files.fields import positive_int
from rollback_drill.plugin import run_record
from rollback_drill.process import interrupts, places, proc
from rollback_drill.process.errors import SpecError
from rollback_drill.stack.select import CHOICES, backends_for, docker_available, make_stack

if TYPE_CHECKING:  # the drill engine loads when a drill runs, not on every pytest start
    from rollback_drill.engine.outcome import Drill, DrillOutcome, DrillRunner
    from rollback_drill.files.spec import LoadedStack
    from rollback_drill.stack.base import Stack


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
signals_key = pytest.StashKey[Any]()
session_key = pytest.StashKey[str]()  # the controller's identity, handed to xdist workers
WORKER_SESSION = "rollback_drill_session"  # its key in a worker's `workerinput`
_interrupted_by: str | None = None  # set by pytest_keyboard_interrupt, read at teardown


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    """Registers the verify suite's half (`--target`, its fixtures) and the shards' (`--shard`)
    along with this one. Not
    through `pytest_plugins`: pytest would then compile it afresh for assertion rewriting at
    every start, and a verify run's budget is a fraction of a second."""
    from rollback_drill.plugin import shard
    from rollback_drill.plugin import verify as verify_plugin

    if not pluginmanager.is_registered(verify_plugin):
        pluginmanager.register(verify_plugin, "rollback_drill.plugin.verify")
    if not pluginmanager.is_registered(shard):  # --shard K/N: one of N machines' share
        pluginmanager.register(shard, "rollback_drill.plugin.shard")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("rollback-drill")
    group.addoption(
        "--stack-file",
        default=None,
        help="stack file for drills (default: the SafePsy reference stack the package ships)",
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
        help="bring this compose file up for the session before verifying",
    )
    group.addoption(
        "--compose-command",
        default=None,
        choices=["auto", "docker compose", "docker-compose"],
        help="compose v2 (`docker compose`) or v1 (`docker-compose`); default: detected, v2 "
        "first (or ROLLBACK_DRILL_COMPOSE)",
    )
    group.addoption("--compose-project", default=None, help="compose project name")
    group.addoption(
        "--from-release",
        default=None,
        help="run only the drills that put this release out (certify's N+1)",
    )
    group.addoption(
        "--to-release",
        default=None,
        help="the release to roll back to (default: the release's `previous`)",
    )
    group.addoption(
        "--environment",
        default="production",
        help="the stack file's environment drills run in: production (the file itself) or a "
        "profile such as staging (its seed, data and ports); the staging drills always run "
        "in staging",
    )
    group.addoption(
        "--seed-users",
        type=positive_int,
        default=None,
        help="users to seed, at least 1 (default: the stack file's)",
    )
    group.addoption(
        "--drill-artifacts",
        default=str(Path("reports") / "artifacts"),
        help="where drills keep preserved logs, backups and records",
    )
    group.addoption(
        "--drill-records",
        default=str(record.DEFAULT_RECORDS),
        help="where the run's drill record (JSON, schema rollback-drill/record/5) is written; "
        "incident documents go to its sibling incidents/",
    )
    group.addoption(
        "--drill-run-id", default=None, help="id of this run in its drill record (default: random)"
    )
    group.addoption(
        "--load-users",
        type=int,
        default=None,
        help="locust users per drill (default: the stack file's drills.load_users; 0: no load)",
    )
    group.addoption(
        "--load-workers",
        type=int,
        default=0,
        help="run the load as a locust master with N worker processes (locust's distributed mode)",
    )
    group.addoption(
        "--drill-cadence",
        default=None,
        help="the stack file's cadence this run is, for the record (set by run --cadence)",
    )
    group.addoption(
        "--drill-invocation",
        default="pytest",
        help="what started the run, for the record (the CLI sets run or certify)",
    )


def pytest_configure(config: pytest.Config) -> None:
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")
    # Registered, not listed in pytest_plugins: pytest would re-compile it for assertion
    # rewriting on every start, and a verify run's budget is a fraction of a second.
    config.pluginmanager.register(run_record, "rollback-drill-run-record")
    worker_input = getattr(config, "workerinput", None)  # set in an xdist worker only
    config.stash[session_key] = interrupts.begin_session(
        worker_input.get(WORKER_SESSION) if worker_input is not None else None
    )
    _sigterm_interrupts(config)
    if worker_input is not None:
        interrupts.watch(_interrupt_main_thread)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist, in the controller, before starting a worker: the worker joins this session, so
    an interrupt of the controller (or of any worker) stops it too (`interrupts`)."""
    node.workerinput[WORKER_SESSION] = node.config.stash[session_key]


def _interrupt_main_thread(reason: str) -> None:
    """Another process of the session was interrupted: interrupt this one as Ctrl-C would (a
    signal to this process's own main thread, handled by `_sigterm_interrupts`), so the
    drill running now, or its stack part-way up, is torn down while xdist still waits."""
    main = threading.main_thread().ident
    if main is not None and signal.getsignal(signal.SIGINT) not in (signal.SIG_IGN, None):
        signal.pthread_kill(main, signal.SIGINT)


def _sigterm_interrupts(config: pytest.Config) -> None:
    """SIGTERM (a CI timeout, `kill`) ends the session as Ctrl-C does: pytest then tears every
    fixture down - stacks stopped, artifact folders finished - before it exits. Further
    SIGTERMs and SIGINTs are ignored so they cannot cut that teardown short (xdist itself
    sends a worker SIGINT 5 s after its controller's interrupt; SIGKILL still can; the next
    run sweeps), and one that comes during a stack's teardown is raised after it
    (`interrupts.shielded`). The interrupt is the whole session's: every xdist worker stops
    too, and nothing starts a new stack (`interrupts`). Either interrupt arms
    `proc.exit_if_stuck`: an unwinding that deadlocks is ended after a grace period, with
    everything the run started killed."""

    global _interrupted_by
    _interrupted_by = None  # a session run in-process after an interrupted one starts afresh
    capman = config.pluginmanager.getplugin("capturemanager")

    def interrupt(signum: int, frame: FrameType | None) -> None:
        if proc.interrupt_is_unsafe(signum):
            return  # sent again in a moment, once no lock would be left held
        for sig in (signal.SIGTERM, signal.SIGINT):  # xdist's own SIGINT to a worker, 5 s
            signal.signal(sig, signal.SIG_IGN)  # later, must not cut its teardown short
        proc.exit_if_stuck(128 + signum, before=capman.suspend_global_capture if capman else None)
        # nothing new starts, in any process of the session; raised after a stack's teardown
        # if one is running now
        interrupts.raise_interrupt(f"signal {signal.Signals(signum).name} in pid {os.getpid()}")

    previous: dict[signal.Signals, Any] = {}
    with contextlib.suppress(ValueError):  # not the main thread: leave the signals be
        previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, interrupt)
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not if ignored
            previous[signal.SIGINT] = signal.signal(signal.SIGINT, interrupt)
    config.stash[signals_key] = previous


def pytest_unconfigure(config: pytest.Config) -> None:
    for sig, handler in config.stash.get(signals_key, {}).items():
        signal.signal(sig, handler)
    was_interrupted = interrupts.interrupted()
    interrupts.end_session()
    controller = getattr(config, "workerinput", None) is None
    if was_interrupted and controller and not config.getoption("--target", None):
        _sweep(config)  # what a worker killed mid-teardown (xdist's 10 s) left behind


def pytest_keyboard_interrupt(excinfo: pytest.ExceptionInfo[BaseException]) -> None:
    """Remembered so artifact folders torn down next say why they have no verdict (pytest
    calls this before it tears the fixtures down); and the session's other processes start
    nothing new (a worker's interrupt reaches the controller as xdist's own exception)."""
    global _interrupted_by
    _interrupted_by = str(excinfo.value) or "Ctrl-C"
    interrupts.interrupt(f"{_interrupted_by} in pid {os.getpid()}")


def pytest_report_header(config: pytest.Config) -> list[str]:
    return [
        f"rollback-drill: stack {config.getoption('--stack-file') or places.reference_stack()}, "
        f"backend {config.getoption('--stack-backend')}, "
        f"environment {config.getoption('--environment')}"
    ]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Guards and selection. With --target, only verify tests may run: a drill must never
    touch a live target. With --from-release, only the drills that put that release out in
    the run's --environment run (what `certify --from N+1 --to N [--environment E]`
    certifies: a staging drill does not certify production, nor the reverse)."""
    if config.getoption("--target"):
        for item in items:
            if item.get_closest_marker("drill") is not None:
                item.add_marker(
                    pytest.mark.skip(
                        reason="drills never run against a --target (live environment)"
                    )
                )
        return
    wanted = config.getoption("--from-release")
    if not wanted:
        return
    environment = config.getoption("--environment")
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        drill = _drill_of(item)
        # A rollback that goes wrong on purpose certifies nothing about this release.
        rehearsal = "rehearsal_runner" in getattr(item, "fixturenames", ())
        other = drill is not None and (
            drill.release != wanted or (drill.environment or environment) != environment
        )
        (dropped if other or rehearsal else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def _drill_of(item: pytest.Item) -> Drill | None:
    from rollback_drill.engine.outcome import Drill

    callspec = getattr(item, "callspec", None)
    value = callspec.params.get("drill") if callspec is not None else None
    return value if isinstance(value, Drill) else None


@pytest.fixture(scope="session")
def stack_file(pytestconfig: pytest.Config) -> LoadedStack:
    from rollback_drill.files.spec import load_stack

    path = Path(pytestconfig.getoption("--stack-file") or places.reference_stack())
    try:
        return load_stack(path)
    except SpecError as exc:
        raise pytest.UsageError(str(exc)) from None


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
    drill: Drill,
    stack_backend: str,
) -> Iterator[Stack]:
    """A fresh stack at the release the drill rolls back to, torn down whatever happens."""
    try:
        good = drill.check(stack_file, pytestconfig.getoption("--to-release"))
        loaded = stack_file.in_environment(
            drill.environment or pytestconfig.getoption("--environment")
        )
    except SpecError as exc:
        raise pytest.UsageError(str(exc)) from None
    reason = interrupts.interrupted()
    if reason is not None:  # the session stops here, as the interrupted process's did
        raise KeyboardInterrupt(f"no new stack: the session was interrupted ({reason})")
    stack = make_stack(
        stack_backend,
        drill.stack_file(loaded),
        seed_users=pytestconfig.getoption("--seed-users"),
    )
    try:
        with stack.running(good) as running:
            yield running
    finally:
        stack.down()  # again (it does nothing twice): an interrupt just before `running`


@pytest.fixture
def drill_runner(
    pytestconfig: pytest.Config,
    stack_file: LoadedStack,
    drill_stack: Stack,
    drill_artifacts: Path,
    request: pytest.FixtureRequest,
) -> DrillRunner:
    """Runs a drill on the fixture's stack with Allure as a reader of its timeline, and keeps
    its outcome for the terminal summary and the run's drill record."""
    return _runner(pytestconfig, stack_file, drill_stack, drill_artifacts, request, True)


@pytest.fixture
def rehearsal_runner(
    pytestconfig: pytest.Config,
    stack_file: LoadedStack,
    drill_stack: Stack,
    drill_artifacts: Path,
    request: pytest.FixtureRequest,
) -> DrillRunner:
    """Runs a drill that is expected to fail - a rollback that goes wrong, whose test asserts
    how - as `drill_runner` does, but keeps it out of the run's drill record: a run with it
    would otherwise never count as a passing cadence."""
    return _runner(pytestconfig, stack_file, drill_stack, drill_artifacts, request, False)


def _runner(
    pytestconfig: pytest.Config,
    stack_file: LoadedStack,
    drill_stack: Stack,
    drill_artifacts: Path,
    request: pytest.FixtureRequest,
    recorded: bool,
) -> DrillRunner:
    from rollback_drill.engine.drill import LoadOptions, run_drill
    from rollback_drill.evidence import report

    def run(drill: Drill) -> DrillOutcome:
        good = drill.check(stack_file, pytestconfig.getoption("--to-release"))
        report.label_drill(drill, stack_file.budget(drill.severity), drill_stack.backend_name)
        listener = report.AllureListener()
        outcome = run_drill(
            drill_stack,
            drill,
            artifacts=drill_artifacts,
            good_release=good,
            listeners=[listener],
            load=LoadOptions(
                pytestconfig.getoption("--load-users"), pytestconfig.getoption("--load-workers")
            ),
        )
        report.finish_drill(outcome, stack_file, listener)
        if recorded:
            run_record.keep(
                pytestconfig, record.DrillEntry(outcome, stack_file, request.node.nodeid)
            )
        return outcome

    return run


@pytest.fixture
def drill_artifacts(pytestconfig: pytest.Config, request: pytest.FixtureRequest) -> Iterator[Path]:
    """The drill's artifact folder; it ends with a drill.json whatever happens (see
    `artifacts`): the drill's record, or one that says interrupted."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    # absolute: the drill's subprocesses (locust writing its samples here) run elsewhere
    path = (
        Path(pytestconfig.getoption("--drill-artifacts")).resolve()
        / f"{time.strftime('%Y%m%d-%H%M%S')}-{safe}"
    )
    artifacts.begin(path, request.node.nodeid)
    try:
        yield path
    finally:
        why = _interrupted_by
        artifacts.finish(
            path,
            f"the session was interrupted ({why}) before the drill wrote its record"
            if why
            else "the test ended before the drill wrote its record (an error outside the drill)",
        )


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_fixture_setup(
    fixturedef: pytest.FixtureDef[object], request: pytest.FixtureRequest
) -> Generator[None, object, None]:
    """Readable set-up and tear-down in the Allure report. allure-pytest reports every
    finalizer of a fixture as an "after": under pytest 9 that includes pytest's own
    post-finalizer hook, a lambda whose status Allure never learns (shown as `<lambda>`,
    unknown), and names a yield fixture's teardown by its list index. Runs after
    allure-pytest has wrapped them: the hook goes back to unreported, the teardown gets the
    fixture's name."""
    yield
    finalizers = getattr(fixturedef, "_finalizers", None) or []
    for index, finalizer in enumerate(finalizers):
        inner = getattr(finalizer, "_fixture_function", None)
        if inner is None:
            continue
        if getattr(inner, "__name__", "") == "<lambda>":
            finalizers[index] = inner
        elif isinstance(inner, functools.partial):
            finalizer._name = f"{fixturedef.argname}::teardown"


@pytest.fixture(scope="session")
def compose_services(pytestconfig: pytest.Config) -> Iterator[object | None]:
    """With --compose-file: the compose project, up for the session (pytest-docker)."""
    file = pytestconfig.getoption("--compose-file")
    if not file:
        yield None
        return
    from rollback_drill.plugin.compose import (
        ComposeMissing,
        compose_up,
        detect_compose,
        project_name,
    )

    try:
        compose = detect_compose(pytestconfig.getoption("--compose-command"))
    except ComposeMissing as exc:
        raise pytest.UsageError(str(exc)) from None
    project = pytestconfig.getoption("--compose-project") or project_name()
    with compose_up(Path(file), project, compose=compose) as services:
        yield services


def pytest_sessionstart(session: pytest.Session) -> None:
    """Sweep what an earlier, killed run left behind before starting anything new."""
    if session.config.getoption("--target"):
        return  # a verify run starts nothing, and must not spend its budget on a docker sweep
    _sweep(session.config)


def _sweep(config: pytest.Config) -> None:
    """Processes, folders and containers of runs whose harness is gone (a SIGKILLed run's,
    or this run's workers killed by xdist), and their artifact folders marked abandoned."""
    if os.environ.get("ROLLBACK_DRILL_NO_SWEEP") != "1":
        proc.sweep_orphans()
        artifacts.finish_abandoned(Path(config.getoption("--drill-artifacts")))
        if docker_available():
            from rollback_drill.stack.docker_infra import sweep_containers

            sweep_containers()
