"""Commands for the reference stack on this machine: `doctor` (are the tools and the stack
file usable), `up` / `serve` / `down` (a stack that outlives the command, owned by a supervisor
`down` can prove is its own, in `stack/upstack/`), and the runbook's scripts run against the stack
`up` started: `rollback` (auto-rollback.sh) and `backup` (docker-manage.sh backup).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rollback_drill.files.spec import LoadedStack, load_stack
from rollback_drill.process.errors import SpecError, ToolMissing
from rollback_drill.process.tools import find_tool
from rollback_drill.stack.local import check_commands
from rollback_drill.stack.upstack import supervisor


def cmd_up(ns: argparse.Namespace) -> int:
    return supervisor.up(ns.stack, ns.dir, ns.release, ns.seed_users, ns.timeout, ns.environment)


def cmd_serve(ns: argparse.Namespace) -> int:
    """The supervisor behind `up`: owns the stack until SIGTERM/SIGINT, and answers
    `rollback` and `backup` with autorollback's controller."""
    from rollback_drill.cli import autorollback

    return supervisor.serve(
        ns.stack,
        ns.dir,
        ns.release or None,
        ns.seed_users,
        ns.token,
        ns.environment,
        controller=autorollback.Controller,
    )


def cmd_down(ns: argparse.Namespace) -> int:
    return supervisor.down(ns.dir)


def cmd_rollback(ns: argparse.Namespace) -> int:
    """The runbook's auto-rollback.sh against the stack `up` runs (autorollback.py)."""
    from rollback_drill.cli import autorollback

    return autorollback.rollback(ns.dir, ns.backup, ns.environment)


def cmd_backup(ns: argparse.Namespace) -> int:
    from rollback_drill.cli import autorollback

    return autorollback.backup(ns.dir, ns.environment, ns.output)


def cmd_doctor(ns: argparse.Namespace) -> int:
    """Every tool, the stack file, its commands on this machine and - when a stack is up in
    `--dir` - its integrity collections. Exit 1 when anything is missing or broken."""
    ok = True
    for tool in [
        "secantusd-py",
        "redis-server",
        "nginx",
        "anvil",
        "mongosh",
        "allure",
        "chromium",
        "node",
    ]:
        try:
            print(f"ok      {tool}: {find_tool(tool)}")
        except ToolMissing as exc:
            ok = False
            print(f"MISSING {exc}")
    try:
        loaded = load_stack(ns.stack)
        check_commands(loaded)
        print(f"ok      stack file {ns.stack}")
        _collections(loaded, ns.dir)
    except SpecError as exc:
        ok = False
        print(f"BROKEN  {exc}")
    return 0 if ok else 1


def _collections(loaded: LoadedStack, directory: Path) -> None:
    """The integrity collections against the stack `up` runs in `directory`; only a seeded
    stack can say which collections exist, so without one this is said, not passed."""
    from pymongo.errors import PyMongoError

    from rollback_drill.stack.target import target_from_file
    from rollback_drill.stack.targetfile import INTEGRITY_FIELD, refuse_missing_collections
    from rollback_drill.stack.upstack.state import read_state

    state = read_state(directory)
    if state is None or state.phase != "ready" or not state.target:
        print(f"unknown {INTEGRITY_FIELD}: no stack is up in {directory} to look in (`up` checks)")
        return
    target = target_from_file(Path(state.target), with_baseline=False)
    try:
        refuse_missing_collections(loaded, target.mongodb_uri.reveal(), target.mongodb_database)
    except PyMongoError as exc:
        raise SpecError(f"{state.target}: cannot read MongoDB: {exc}") from None
    names = ", ".join(loaded.spec.stores.mongodb.integrity_collections)
    print(f"ok      {INTEGRITY_FIELD}: {names} (in the stack up in {directory})")
