"""Runbook coverage: the reference runbook's commands, the procedures found generically, drift
when the runbook changes, and the `coverage` command. No stack."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import rollback_drill.procedures as procedures_package
from rollback_drill import checks
from rollback_drill.cli import app as cli
from rollback_drill.evidence import coverage, runbookshell
from rollback_drill.procedures import automation, configuration, emergency, planned
from rollback_drill.steps.procedure import Procedure, Step
from tests.helpers import copy_stack_file
from tests.paths import PROJECT_ROOT

RUNBOOK = PROJECT_ROOT / "fixtures" / "safepsy" / "ROLLBACK_RUNBOOK.md"


def _noop(_: Any) -> None:
    return None


def test_the_runbooks_commands_under_their_headings() -> None:
    commands = runbookshell.parse_runbook(RUNBOOK.read_text())
    first = commands[0]
    assert first.section == (
        "Rollback Procedures", "Emergency Rollback (Critical Issues)", "Step 1: Immediate Response"
    )  # fmt: skip
    assert first.text == "./docker-manage.sh stop production"
    assert RUNBOOK.read_text().splitlines()[first.line - 1] == first.text
    texts = [c.text for c in commands]
    # A quoted argument over several lines and backslash continuations are one command each.
    assert (
        'docker exec safepsy-mongodb mongosh --eval " use safepsy; db.users.countDocuments(); '
        'db.sessions.countDocuments(); "' in texts
    )
    assert (
        "tar -czf rollback-state-$(date +%Y%m%d_%H%M%S).tar.gz backend/.env ai-chatbot/.env "
        "nginx/nginx.conf" in texts
    )
    plumbing = [c.text for c in commands if c.plumbing]
    assert "cd backend" in plumbing and 'echo "Starting automated rollback..."' in plumbing
    assert "BACKUP_FILE=$1" in plumbing and 'if [ -z "$BACKUP_FILE" ]; then' in plumbing
    assert "cd backend && npm run build" not in plumbing, "cd with work after it is a command"
    assert not any(t.startswith("#") for t in texts), "comments are not commands"


def test_pieces_split_outside_quotes_only() -> None:
    assert runbookshell.pieces("a  b; c\nd") == ["a b", "c", "d"]
    assert runbookshell.pieces('x --eval "p; q"; y') == ['x --eval "p; q"', "y"]


def test_reference_coverage_and_what_is_left() -> None:
    found = coverage.measure(RUNBOOK)
    assert found.clean, (found.drifted, found.problems)
    names = set(found.procedures)
    assert {"emergency", "planned", "service: backend", "service: frontend"} <= names
    assert {"service: ai-chatbot", "configuration: environment variables"} <= names
    # Each procedure that exists covers its own section (the emergency's "Monitor logs for
    # errors" by the verify phase's monitoring watch, a check).
    for procedure in (
        emergency.PROCEDURE,
        planned.PROCEDURE,
        configuration.NGINX,
        configuration.SSL,
        automation.PROCEDURE,
    ):
        mine = [
            c.command.text
            for c in found.commands
            if coverage.in_section(procedure.runbook_section, c.command.section) and not c.covered
        ]
        assert mine == [], procedure.name
    by_text = {(c.command.where, c.command.text): c for c in found.commands}
    watched = by_text[
        (
            "Rollback Procedures > Emergency Rollback (Critical Issues) > Step 3: Verification",
            "./docker-manage.sh logs production --follow",
        )
    ]
    assert [s.label for s in watched.performed_by] == ["verify check monitoring.green"]
    # The runbook's "Rollback Verification" is the verify phase's checks; what no check does
    # (a script's own health summary, the backend's /health timed) stays open.
    verification = [c for c in found.commands if c.command.section[0] == "Rollback Verification"]
    assert [c.command.text for c in verification if not c.covered] == [
        "./docker-manage.sh health production",
        "time curl -f http://localhost:3000/health",
    ]
    mongo_ping = next(c for c in verification if "adminCommand('ping')" in c.command.text)
    assert [s.label for s in mongo_ping.performed_by] == ["verify check connectivity.mongodb"]
    step_1 = (
        "Rollback Procedures > Emergency Rollback (Critical Issues) > Step 1: Immediate Response"
    )
    stop = by_text[(step_1, "./docker-manage.sh stop production")]
    assert [s.number for s in stop.performed_by] == [1, 4]
    # The same command text in another section is not covered by the emergency's step.
    scripted = [c for c in found.commands if c.command.section[0] == "Rollback Automation"]
    assert scripted and all(c.covered for c in scripted)
    assert "automation: auto-rollback" in names
    assert 0 < found.covered < found.total and found.percent == round(
        100 * found.covered / found.total, 1
    )


def _edited_runbook(tmp_path: Path, old: str, new: str) -> Path:
    text = RUNBOOK.read_text()
    assert old in text
    path = tmp_path / "RUNBOOK.md"
    path.write_text(text.replace(old, new))
    return path


def test_drift_when_the_runbook_changes(tmp_path: Path) -> None:
    changed = _edited_runbook(
        tmp_path, "./docker-manage.sh backup production", "./docker-manage.sh snapshot production"
    )
    found = coverage.measure(changed)
    drifted = {(d.step.label, d.command) for d in found.drifted}
    assert drifted == {
        ("emergency step 3 (Create emergency backup)", "./docker-manage.sh backup production"),
        ("planned step 2 (Backup current state)", "./docker-manage.sh backup production"),
    }
    snapshot = [c for c in found.commands if c.command.text.endswith("snapshot production")]
    assert snapshot and not any(c.covered for c in snapshot)
    assert not found.clean
    # A renamed section leaves its procedure's steps nowhere: flagged, not silently uncovered.
    renamed = coverage.measure(
        _edited_runbook(tmp_path, "### Frontend Rollback", "### Web Frontend Rollback")
    )
    assert any(
        d.step.procedure == "service: frontend" and "is not in the runbook" in d.reason
        for d in renamed.drifted
    )


def test_a_step_that_misquotes_its_command_is_drifted_and_covers_nothing() -> None:
    wrong = Procedure(
        "emergency (misquoted)",
        emergency.PROCEDURE.runbook_section,
        "emergency",
        (Step("Rollback to previous version", "git checkout HEAD~2", _noop),),
    )
    found = coverage.measure(RUNBOOK, [wrong])
    assert [(d.command, d.reason) for d in found.drifted] == [
        ("git checkout HEAD~2", "no longer in the runbook")
    ]
    assert found.covered == 0
    right = Procedure(wrong.name, wrong.runbook_section, "emergency",
                      (Step("Rollback", "git checkout HEAD~1", _noop),))  # fmt: skip
    assert coverage.measure(RUNBOOK, [right]).covered == 1


@pytest.fixture
def extra_procedures(tmp_path: Path) -> Iterator[Path]:
    """A folder searched as part of rollback_drill.procedures, as a new module would be."""
    folder = tmp_path / "more_procedures"
    folder.mkdir()
    procedures_package.__path__.append(str(folder))
    try:
        yield folder
    finally:
        procedures_package.__path__.remove(str(folder))
        for name in [n for n in sys.modules if n.startswith("rollback_drill.procedures.zz_")]:
            del sys.modules[name]


def test_procedures_are_discovered_not_listed(extra_procedures: Path) -> None:
    (extra_procedures / "zz_redis.py").write_text(
        "from rollback_drill.steps.procedure import Procedure, Step\n"
        "STEPS = (Step('Clear Redis cache', 'docker exec safepsy-redis redis-cli FLUSHALL', "
        "lambda ctx: None),)\n"
        "ALL = {'redis': Procedure('redis (test)', 'Database Rollback > Redis Rollback', "
        "'database', STEPS)}\n"
    )
    found = coverage.measure(RUNBOOK)
    assert "redis (test)" in found.procedures
    flush = [c for c in found.commands if "FLUSHALL" in c.command.text]
    # the discovered module counts beside the real Redis procedure that performs it too
    assert "redis (test)" in [s.procedure for s in flush[0].performed_by]
    (extra_procedures / "zz_broken.py").write_text("raise RuntimeError('half written')\n")
    broken = coverage.measure(RUNBOOK)
    assert broken.problems == (
        "rollback_drill.procedures.zz_broken: cannot import (RuntimeError: half written)",
    )


def test_coverage_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra_procedures: Path
) -> None:
    assert cli.main(["coverage"]) == 0
    out = capsys.readouterr().out
    assert "UNCOVERED  ./docker-manage.sh health production" in out
    assert "<- verify check monitoring.green" in out
    assert "covered    ./docker-manage.sh stop production" in out
    assert "<- emergency step 1 (Stop application services)" in out
    found = coverage.measure(RUNBOOK)
    assert f"covered {found.covered} of {found.total} runbook commands" in out
    assert "drift: none" in out

    runbook = _edited_runbook(tmp_path, "git tag rollback-", "git tag release-rollback-")
    stack = copy_stack_file(tmp_path, "stack.yaml", lambda s: s.update(runbook=str(runbook)))
    assert cli.main(["coverage", "--stack", str(stack)]) == 1
    assert "DRIFTED: 1 step command(s)" in capsys.readouterr().out
    assert cli.main(["coverage", "--fail-under", "99"]) == 1
    capsys.readouterr()
    (extra_procedures / "zz_broken.py").write_text("import no_such_module_anywhere\n")
    assert cli.main(["coverage"]) == 2
    assert "PROCEDURE MODULES NOT IMPORTED" in capsys.readouterr().out


def test_the_record_carries_the_figure_or_says_it_could_not(tmp_path: Path) -> None:
    from rollback_drill.evidence import record

    stack = PROJECT_ROOT / "fixtures" / "safepsy" / "stack.yaml"
    figure = record.runbook_coverage(stack)
    assert figure is not None
    assert figure.runbook.path == "fixtures/safepsy/ROLLBACK_RUNBOOK.md"
    assert figure.covered == coverage.measure(RUNBOOK).covered
    with pytest.warns(UserWarning, match="runbook coverage not measured: SpecError"):
        assert record.runbook_coverage(tmp_path / "missing.yaml") is None


def test_a_check_that_misquotes_the_runbook_is_drifted_and_covers_nothing() -> None:
    ping = checks.BY_NAME["connectivity.redis"]
    wrong = dataclasses.replace(ping, runbook="docker exec safepsy-redis redis-cli PING")
    found = coverage.measure(RUNBOOK, [], [wrong])
    assert [(d.step.label, d.command) for d in found.drifted] == [
        ("verify check connectivity.redis", "docker exec safepsy-redis redis-cli PING")
    ]
    assert found.covered == 0
    assert coverage.measure(RUNBOOK, [], [ping]).covered == 1
