"""What a pytest run of drills can be told: the plugin's command-line options (the stack file
and backend, the releases and environment, load, where artifacts and records go, what started
the run) and the markers drills and cadences select by.

Separate from `plugin.core` (the hooks) because options are the plugin's vocabulary, read by
`plugin.fixtures`, `plugin.run_record` and the cadences' marker expressions
(`programme.cadence`), and registering them is all this module does. Registered by
`core.pytest_addhooks`, after the verify half's and the shards' options.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rollback_drill.files.fields import positive_int
from rollback_drill.process import places
from rollback_drill.stack.select import CHOICES

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
        default=str(places.RECORDS),
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


__all__ = ["MARKERS", "pytest_addoption"]
