"""`rollback-drill rollback --backup FILE --environment ENV` (the runbook's auto-rollback.sh)
and `rollback-drill backup`, as a user runs them against the stack `rollback-drill up` runs:
the usage line and exit 2 without a backup file, nothing done for a file that is not a backup
or an environment that is not up, and a real rollback that brings the previous release and
the backed-up data back, green."""

from __future__ import annotations

import gzip
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from rollback_drill.checks import BY_NAME
from rollback_drill.stack.target import target_from_file
from rollback_drill.stack.upstack.state import read_state
from rollback_drill.stores import mongo
from rollback_drill.stores.mongoconn import plain
from tests.paths import PROJECT_ROOT
from tests.test_dump import _metadata, _tarball

CLI = [sys.executable, "-m", "rollback_drill.cli"]
USAGE = "Usage: rollback-drill rollback --backup <backup_file> [--environment <environment>]"


def _cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=timeout,
        check=False,
    )  # fmt: skip


def test_without_a_backup_file_it_prints_the_runbooks_usage_line_and_exits_2() -> None:
    done = _cli("rollback")
    assert done.returncode == 2
    assert done.stderr.strip() == USAGE


def test_a_file_that_is_not_a_backup_or_no_stack_up_does_nothing(tmp_path: Path) -> None:
    missing = _cli("rollback", "--backup", str(tmp_path / "nope.tar.gz"), "--dir", str(tmp_path))
    assert missing.returncode == 2 and "no such backup file; nothing was done" in missing.stderr
    junk = tmp_path / "junk.tar.gz"
    junk.write_text("not an archive")
    done = _cli("rollback", "--backup", str(junk), "--dir", str(tmp_path))
    assert done.returncode == 2 and "not a readable backup archive" in done.stderr
    nothing_up = _cli("backup", "--dir", str(tmp_path))
    assert nothing_up.returncode == 2 and "no stack is up" in nothing_up.stderr


@pytest.fixture
def up_dir(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "up"
    up = _cli("up", "--dir", str(directory), "--release", "1.7.0", "--seed-users", "30")
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        yield directory
    finally:
        _cli("down", "--dir", str(directory), timeout=90)


def test_rollback_restores_the_backup_and_the_previous_release(up_dir: Path) -> None:
    made = _cli("backup", "--dir", str(up_dir))
    assert made.returncode == 0, made.stderr
    backup = Path(made.stdout.strip().removeprefix("backup: "))
    assert backup.is_file() and stat.S_IMODE(backup.stat().st_mode) == 0o600
    target = target_from_file(up_dir / "target.yaml")
    with mongo.client(target.mongodb_uri.reveal()) as conn:
        users = conn[target.mongodb_database]["users"]
        before = users.count_documents({})
        users.delete_many({"email": {"$ne": target.test_email}})  # the damage to undo
        assert users.count_documents({}) == 1

    wrong_env = _cli("rollback", "--backup", str(backup), "--dir", str(up_dir),
                     "--environment", "staging")  # fmt: skip
    assert wrong_env.returncode == 2 and "not staging" in wrong_env.stderr

    done = _cli("rollback", "--backup", str(backup), "--dir", str(up_dir))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Starting automated rollback: 1.7.0 -> 1.4.0" in done.stdout
    for step in ("Stop services", "Restore database", "Rollback code", "Rebuild", "Start",
                 "Verify"):  # fmt: skip
        assert f". {step}: ok" in done.stdout, done.stdout
    assert "Rollback completed successfully: release 1.4.0" in done.stdout
    assert "within the matrix's critical budget of 300 s" in done.stdout

    with mongo.client(target.mongodb_uri.reveal()) as conn:
        assert conn[target.mongodb_database]["users"].count_documents({}) == before
    state = read_state(up_dir)
    assert state is not None and state.release == "1.4.0"
    after = target_from_file(up_dir / "target.yaml")
    releases = BY_NAME["rollback.releases"].run(after)
    assert releases.ok, releases.summary
    for name in ("health.backend", "health.ai-chatbot", "health.frontend"):
        assert BY_NAME[name].run(after).ok, name

    again = _cli("rollback", "--backup", str(backup), "--dir", str(up_dir))
    assert again.returncode == 2 and "names no previous release" in again.stderr


def _mongodump_tarball(uri: str, database: str, work: Path) -> Path:
    """What the team's `./docker-manage.sh backup` leaves in a real deployment: the output
    of `mongodump --db DB --out dump --gzip`, tarred as `safepsy_backup_YYYYMMDD_HHMMSS.tar.gz`
    - written here from the live database with pymongo, to mongodump's layout."""
    folder = work / "dump" / database
    folder.mkdir(parents=True)
    with mongo.client(uri) as conn:
        db = conn[database]
        for info in map(plain, db.list_collections()):
            name = str(info["name"])
            docs = b"".join(bytes(doc.raw) for doc in db[name].find())
            indexes = [plain(i) for i in db[name].list_indexes()]
            meta = _metadata(name, indexes, dict(info.get("options", {})))
            (folder / f"{name}.bson.gz").write_bytes(gzip.compress(docs))
            (folder / f"{name}.metadata.json.gz").write_bytes(gzip.compress(meta.encode()))
    return _tarball(work / "safepsy_backup_20261206_120000.tar.gz", work / "dump")


def test_rollback_restores_the_teams_mongodump_backup_file(up_dir: Path, tmp_path: Path) -> None:
    target = target_from_file(up_dir / "target.yaml")
    uri, database = target.mongodb_uri.reveal(), target.mongodb_database
    backup = _mongodump_tarball(uri, database, tmp_path / "team")
    want = mongo.fingerprint(uri, database, ["users", "did_documents", "sessions"])
    with mongo.client(uri) as conn:
        conn[database]["users"].delete_many({"email": {"$ne": target.test_email}})
    done = _cli("rollback", "--backup", str(backup), "--dir", str(up_dir))
    assert done.returncode == 0, done.stdout + done.stderr
    assert ". Restore database: ok" in done.stdout, done.stdout
    assert "Rollback completed successfully: release 1.4.0" in done.stdout
    assert mongo.fingerprint(uri, database, ["users", "did_documents", "sessions"]) == want
