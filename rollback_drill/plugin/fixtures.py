"""The pytest plugin's fixtures: the stack file, a fresh stack per drill on each backend the
run chose, the runners that run a drill on it (recorded, or a rehearsal kept out of the
record), the drill's artifact folder that always ends with a `drill.json`, and a compose
project up for the session.

Separate from `plugin.core` (the hooks that guard and select a run) because a fixture is what
a drill asks for by name, built and torn down around it; the engine loads inside them, when
a drill runs, never on pytest's start (the drill record's models and the artifact folder's
too: 0.1 s of a `pytest -m verify` run, which writes neither). Registered by
`core.pytest_addhooks`; core tells it what interrupted the session (`remember_interrupt`), for
artifact folders torn down after.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from rollback_drill.plugin import run_record
from rollback_drill.process import interrupts, places
from rollback_drill.process.errors import SpecError
from rollback_drill.stack.select import make_stack

if TYPE_CHECKING:  # the drill engine loads when a drill runs, not on every pytest start
    from rollback_drill.engine.outcome import Drill, DrillOutcome, DrillRunner
    from rollback_drill.files.spec import LoadedStack
    from rollback_drill.stack.base import Stack

_interrupted_by: str | None = None  # set by core's pytest_keyboard_interrupt, read at teardown


def remember_interrupt(reason: str | None) -> None:
    """What interrupted the session, said by artifact folders torn down after it (None: a
    session run in-process after an interrupted one starts afresh)."""
    global _interrupted_by
    _interrupted_by = reason


@pytest.fixture(scope="session")
def stack_file(pytestconfig: pytest.Config) -> LoadedStack:
    from rollback_drill.files.spec import load_stack

    path = Path(pytestconfig.getoption("--stack-file") or places.reference_stack())
    try:
        return load_stack(path)
    except SpecError as exc:
        raise pytest.UsageError(str(exc)) from None


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
    from rollback_drill.evidence import record, report

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
    from rollback_drill.evidence import artifacts

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


__all__ = [
    "compose_services",
    "drill_artifacts",
    "drill_runner",
    "drill_stack",
    "rehearsal_runner",
    "remember_interrupt",
    "stack_backend",
    "stack_file",
]
