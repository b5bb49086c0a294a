"""The pytest plugin (entry point `pytest11`): its hooks - the guards that keep a verify run
read-only and a drill off anything it did not start itself, the selection of a run's drills,
the session's interrupts (SIGTERM as Ctrl-C, shared with xdist workers) and the sweep of what
a killed run left - and the registration of its other halves.

The plugin's options and markers are `plugin.options`, its fixtures `plugin.fixtures`; the
verify suite's half (`plugin.verify`), the shards (`plugin.shard`) and the run's record
(`plugin.run_record`) are modules of their own, all registered from here (`pytest_addhooks`,
`pytest_configure`), so `-p rollback_drill.plugin.core` alone loads the whole plugin.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import threading
from collections.abc import Generator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import pytest

from rollback_drill.plugin import fixtures, run_record
from rollback_drill.plugin.options import MARKERS
from rollback_drill.process import interrupts, places, proc
from rollback_drill.stack.select import backends_for, docker_available

if TYPE_CHECKING:  # the drill engine loads when a drill runs, not on every pytest start
    from rollback_drill.engine.outcome import Drill


signals_key = pytest.StashKey[Any]()
session_key = pytest.StashKey[str]()  # the controller's identity, handed to xdist workers
WORKER_SESSION = "rollback_drill_session"  # its key in a worker's `workerinput`


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    """Registers the verify suite's half (`--target`, its fixtures), the shards' (`--shard`),
    the drills' options (`options`) and fixtures (`fixtures`) along with this one. Not
    through `pytest_plugins`: pytest would then compile it afresh for assertion rewriting at
    every start, and a verify run's budget is a fraction of a second."""
    from rollback_drill.plugin import options, shard
    from rollback_drill.plugin import verify as verify_plugin

    if not pluginmanager.is_registered(verify_plugin):
        pluginmanager.register(verify_plugin, "rollback_drill.plugin.verify")
    if not pluginmanager.is_registered(shard):  # --shard K/N: one of N machines' share
        pluginmanager.register(shard, "rollback_drill.plugin.shard")
    if not pluginmanager.is_registered(options):
        pluginmanager.register(options, "rollback_drill.plugin.options")
    if not pluginmanager.is_registered(fixtures):
        pluginmanager.register(fixtures, "rollback_drill.plugin.fixtures")


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

    fixtures.remember_interrupt(None)  # afresh: this session may follow an interrupted one
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
    reason = str(excinfo.value) or "Ctrl-C"
    fixtures.remember_interrupt(reason)
    interrupts.interrupt(f"{reason} in pid {os.getpid()}")


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


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A drill runs once per backend the --stack-backend choice means on this machine."""
    if "drill_stack" in metafunc.fixturenames:
        backends = backends_for(metafunc.config.getoption("--stack-backend"))
        metafunc.parametrize("stack_backend", backends, indirect=True)


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


def pytest_sessionstart(session: pytest.Session) -> None:
    """Sweep what an earlier, killed run left behind before starting anything new."""
    if session.config.getoption("--target"):
        return  # a verify run starts nothing, and must not spend its budget on a docker sweep
    _sweep(session.config)


def _sweep(config: pytest.Config) -> None:
    """Processes, folders and containers of runs whose harness is gone (a SIGKILLed run's,
    or this run's workers killed by xdist), and their artifact folders marked abandoned."""
    if os.environ.get("ROLLBACK_DRILL_NO_SWEEP") != "1":
        from rollback_drill.evidence import artifacts

        proc.sweep_orphans()
        artifacts.finish_abandoned(Path(config.getoption("--drill-artifacts")))
        if docker_available():
            from rollback_drill.stack.docker_infra import sweep_containers

            sweep_containers()
