"""A restore cannot half-finish: killed mid-way, or cut off from the database, it leaves the
old documents or the backup's, never a mixture, and running it again ends equal to the
backup - indexes and options included. Real SecantusDB; the restore runs in its own process
so it can be SIGKILLed like a harness that dies."""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from pymongo import ASCENDING, MongoClient
from pymongo.database import Database

from rollback_drill.process.errors import RestoreError
from rollback_drill.stores import mongo
from rollback_drill.stores.restore import JOURNAL

pytestmark = pytest.mark.slow  # restores of large data, killed and cut off: not in the fast tier

DB = "drilldb"


def _people(n: int) -> list[dict[str, object]]:
    return [{"_id": f"p{i:06d}", "email": f"p{i}@example.test", "n": i} for i in range(n)]


@pytest.fixture(scope="module")
def archives(server: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the backup, the damaged state): a migration-like damage of the backup's data -
    documents lost and rewritten, an index dropped and another added, a collection gone,
    a collection added - big enough that restoring it takes seconds."""
    root = tmp_path_factory.mktemp("archives")
    conn: MongoClient[dict[str, Any]]
    with MongoClient(server) as conn:
        db: Database[dict[str, Any]] = conn[DB]
        db.drop_collection("people")
        db.people.insert_many(_people(24_000))
        db.people.create_index([("email", ASCENDING)], unique=True, name="email_unique")
        db.create_collection("notes", validator={"text": {"$exists": True}})
        db.notes.insert_many([{"_id": i, "text": f"note {i}"} for i in range(3000)])
        backup = root / "backup"
        mongo.backup(server, DB, backup)
        db.people.delete_many({"n": {"$lt": 9000}})
        db.people.drop_index("email_unique")
        db.people.update_many({"n": {"$gte": 20_000}}, {"$set": {"email": "merged"}})
        db.people.create_index([("n", ASCENDING)], name="n_1")
        db.drop_collection("notes")
        db.audit.insert_many([{"_id": i} for i in range(500)])
        damaged = root / "damaged"
        mongo.backup(server, DB, damaged)
    return backup, damaged


def _documents(uri: str) -> dict[str, str]:
    """Each non-empty collection's documents as one hash: what a reader would see (an empty
    collection reads like none)."""
    names = MongoClient(uri)[DB].list_collection_names()
    found = mongo.fingerprint(uri, DB, names)
    return {n: c.sha256 for n, c in found.collections.items() if c.count}


def _settled_documents(uri: str, timeout_s: float = 30.0) -> dict[str, str]:
    """`_documents` once two reads half a second apart agree. A restore killed just after it
    sent its commit leaves the server applying it; a reader that reads one collection before
    the commit lands and the next after it sees a mixture no snapshot ever held (each find
    has its own snapshot, on mongod too). What stays after the server is done is the state."""
    deadline = time.monotonic() + timeout_s
    seen = _documents(uri)
    while True:
        time.sleep(0.5)
        now = _documents(uri)
        if now == seen or time.monotonic() > deadline:
            return now
        seen = now


def _full(uri: str) -> mongo.Fingerprint:
    names = sorted(MongoClient(uri)[DB].list_collection_names())
    return mongo.fingerprint(uri, DB, names)


def _reset(uri: str, archive: Path) -> None:
    report = mongo.restore(uri, DB, archive)
    assert report.equal, report.to_json()


def _copy(archive: Path, dest: Path) -> Path:
    shutil.copytree(archive, dest, ignore=shutil.ignore_patterns(JOURNAL))
    return dest


_CHILD = """
import sys
from pathlib import Path
from typing import Any
from rollback_drill.stores import mongo
mongo.restore(sys.argv[1], sys.argv[2], Path(sys.argv[3]), progress=lambda p: print(p, flush=True))
"""


def _killed_during(uri: str, archive: Path, phase: str, delay_s: float) -> list[str]:
    """Run the restore in a child process and SIGKILL it `delay_s` after it announces
    `phase`; return the phases it announced."""
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, uri, DB, str(archive)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    heard: list[str] = []
    try:
        assert child.stdout is not None
        for line in child.stdout:
            heard.append(line.strip())
            if heard[-1] == phase:
                time.sleep(delay_s)
                child.send_signal(signal.SIGKILL)
                break
        # what it announced while we slept (the pipe holds it): a commit it reported counts
        heard += [line.strip() for line in child.stdout]
    finally:
        child.kill()
        child.wait(timeout=30)
    assert phase in heard, f"the restore never reached {phase}: {heard}"
    return heard


@pytest.mark.parametrize(
    ("phase", "delay_s"),
    [("planning", 0.2), ("transaction", 0.4), ("transaction", 1.5), ("indexes", 0.0)],
    ids=["planning", "early-in-transaction", "late-in-transaction", "indexes"],
)
def test_a_killed_restore_leaves_old_or_backup_and_a_rerun_converges(
    server: str, archives: tuple[Path, Path], phase: str, delay_s: float
) -> None:
    backup, damaged = archives
    _reset(server, backup)
    want = _full(server)
    want_docs = _documents(server)
    _reset(server, damaged)
    old_docs = _documents(server)
    assert old_docs != want_docs

    heard = _killed_during(server, backup, phase, delay_s)
    now = _settled_documents(server)
    assert now in (old_docs, want_docs), f"a mixture after a kill during {phase}: {now}"
    if phase == "indexes" or "indexes" in heard:
        assert now == want_docs, "the transaction had committed before the index phase"
    elif "transaction" not in heard:
        assert now == old_docs, "nothing commits before the transaction does"
    # Killed inside the transaction: old or the backup's (the commit can land between its
    # last write and its announcement), never a mixture - asserted above.
    assert (backup / JOURNAL).exists() or "done" in heard or phase == "planning"

    rerun = subprocess.run(
        [sys.executable, "-c", "import sys, json\nfrom pathlib import Path\n"
         "from rollback_drill.stores import mongo\n"
         "r = mongo.restore(sys.argv[1], sys.argv[2], Path(sys.argv[3]))\n"
         "print(json.dumps(r.to_json()))", server, DB, str(backup)],
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert '"equal_to_backup": true' in rerun.stdout
    if phase != "planning" and "done" not in heard:
        assert '"interrupted_restore_finished": null' not in rerun.stdout
    assert _full(server) == want
    assert not (backup / JOURNAL).exists()


class _CuttableProxy:
    """A TCP forwarder to the database that can drop every connection at once and refuse
    new ones: the network going away under a running restore."""

    def __init__(self, target_port: int) -> None:
        self.target = target_port
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.cut_event = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.cut_event.is_set():
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass

    def cut(self) -> None:
        self.cut_event.set()
        self.server.close()
        for conn in self.conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()


def test_a_restore_cut_off_from_the_database_leaves_old_data_and_a_rerun_converges(
    server: str, archives: tuple[Path, Path]
) -> None:
    backup, damaged = archives
    _reset(server, backup)
    want = _full(server)
    _reset(server, damaged)
    old_docs = _documents(server)
    port = int(server.rsplit(":", 1)[1].split("/")[0])
    proxy = _CuttableProxy(port)
    via = f"mongodb://127.0.0.1:{proxy.port}/?directConnection=true"

    def cut_soon(phase: str) -> None:
        if phase == "transaction":
            threading.Timer(0.4, proxy.cut).start()

    started = time.monotonic()
    with pytest.raises(RestoreError, match=r"stopped during documents \(nothing committed yet\)"):
        mongo.restore(via, DB, backup, timeout_s=2.0, progress=cut_soon)
    assert time.monotonic() - started < 60, "a dropped connection fails within its timeouts"
    assert _documents(server) == old_docs
    report = mongo.restore(server, DB, backup)
    assert report.equal and report.interrupted is not None, report.to_json()
    assert _full(server) == want


def test_restore_reports_what_it_changed_and_touches_nothing_that_is_equal(
    server: str, archives: tuple[Path, Path]
) -> None:
    backup, damaged = archives
    _reset(server, backup)
    report = mongo.restore(server, DB, backup)
    assert report.atomic == "nothing to restore" and report.equal
    _reset(server, damaged)
    report = mongo.restore(server, DB, backup)
    rows = {c.name: c for c in report.collections}
    assert report.atomic == "database"
    assert (rows["people"].inserted, rows["people"].replaced, rows["people"].deleted) == (
        9000, 4000, 0,
    )  # fmt: skip
    assert rows["people"].index_changes == ("dropped n_1", "created email_unique")
    assert rows["notes"].count_before is None and rows["notes"].count_after == 3000
    assert rows["audit"].how == "dropped"
    assert [d.name for d in report.verified if not d.equal] == []
    # more than a few documents written, or the collection created: read again, whole
    assert report.verified_by == {
        "people": "read again, all 24000 documents", "notes": "read again, all 3000 documents",
    }  # fmt: skip


def test_a_restore_too_big_for_one_transaction_rebuilds_each_collection_and_says_so(
    server: str, archives: tuple[Path, Path]
) -> None:
    backup, damaged = archives
    _reset(server, damaged)
    report = mongo.restore(server, DB, backup, max_transaction_docs=1000)
    assert report.atomic == "per collection" and report.equal, [d.problems for d in report.verified]
    assert {c.name: c.how for c in report.collections if c.how != "unchanged"} == {
        "people": "rebuilt", "notes": "rebuilt", "audit": "dropped",
    }  # fmt: skip
    conn: MongoClient[dict[str, Any]]
    with MongoClient(server) as conn:
        assert not [n for n in conn[DB].list_collection_names() if "rollback-drill" in n]


def test_a_corrupt_archive_is_refused_before_anything_changes(
    server: str, archives: tuple[Path, Path], tmp_path: Path
) -> None:
    backup, damaged = archives
    _reset(server, damaged)
    before = _full(server)
    broken = _copy(backup, tmp_path / "broken")
    data = bytearray((broken / DB / "people.bson").read_bytes())
    data[200] ^= 0xFF
    (broken / DB / "people.bson").write_bytes(bytes(data))
    with pytest.raises(mongo.ArchiveError, match="checksum mismatch"):
        mongo.restore(server, DB, broken)
    assert _full(server) == before
    assert hashlib.sha256(bytes(data)).hexdigest()  # the file really changed


def test_altered_documents_that_swapped_a_unique_value_are_restored_too(
    server: str, tmp_path: Path
) -> None:
    """Altered documents are replaced in place; two that swapped their e-mail addresses
    cannot be, one after the other, under a unique index: the restore must still end equal,
    in one transaction."""
    conn: MongoClient[dict[str, Any]]
    with MongoClient(server) as conn:
        db: Database[dict[str, Any]] = conn["swapdb"]
        db.drop_collection("people")
        db.people.insert_many([{"_id": i, "email": f"p{i}@example.test"} for i in range(50)])
        db.people.create_index([("email", ASCENDING)], unique=True, name="email_unique")
        backup = tmp_path / "backup"
        mongo.backup(server, "swapdb", backup)
        db.people.update_one({"_id": 1}, {"$set": {"email": "moving"}})
        db.people.update_one({"_id": 2}, {"$set": {"email": "p1@example.test"}})
        db.people.update_one({"_id": 1}, {"$set": {"email": "p2@example.test"}})
        db.people.update_one({"_id": 7}, {"$set": {"email": "p7@elsewhere.test"}})
    report = mongo.restore(server, "swapdb", backup)
    assert report.equal and report.atomic == "database", report.to_json()
    people = next(c for c in report.collections if c.name == "people")
    assert (people.replaced, people.inserted, people.deleted) == (3, 0, 0)


def test_a_restore_too_big_in_bytes_takes_the_largest_collections_out_of_the_transaction(
    server: str, archives: tuple[Path, Path]
) -> None:
    """An uncommitted transaction pins what it writes in the server's cache (SecantusDB
    livelocks past a fraction of it): over the byte budget, the largest collection is
    rebuilt on its own and the rest stays one transaction; with no budget at all, every
    collection is on its own and a surplus one is dropped without being emptied first."""
    backup, damaged = archives
    _reset(server, damaged)
    report = mongo.restore(server, DB, backup, max_transaction_bytes=200_000)
    assert report.atomic == "per collection" and report.equal, report.to_json()
    assert {c.name: c.how for c in report.collections if c.how != "unchanged"} == {
        "people": "rebuilt", "notes": "transaction", "audit": "dropped",
    }  # fmt: skip
    _reset(server, damaged)
    report = mongo.restore(server, DB, backup, max_transaction_bytes=1)
    assert report.atomic == "per collection" and report.equal, report.to_json()
    rows = {c.name: c for c in report.collections}
    assert (rows["people"].how, rows["notes"].how, rows["audit"].how) == (
        "rebuilt", "rebuilt", "dropped",
    )  # fmt: skip
    assert rows["audit"].deleted == 500


def test_the_backups_per_document_records_are_checked_like_its_documents(
    server: str, archives: tuple[Path, Path], tmp_path: Path
) -> None:
    backup, damaged = archives
    copy = _copy(backup, tmp_path / "copy")
    records = bytearray((copy / "people.records").read_bytes())
    assert len(records) == 24_000 * 16, "one 16-byte record per document"
    records[-1] ^= 0xFF
    (copy / "people.records").write_bytes(bytes(records))
    _reset(server, damaged)
    before = _full(server)
    with pytest.raises(mongo.ArchiveError, match=r"people\.records: checksum mismatch"):
        mongo.restore(server, DB, copy)
    assert _full(server) == before


def test_a_backup_without_records_is_read_from_its_documents(server: str, tmp_path: Path) -> None:
    """Archives written before the records existed restore the same: documents lost,
    rewritten and added since, an index dropped, a collection gone. Small on purpose: the
    reading path is what differs, not the size (the shared 27 000-document archive took
    79 s here under a full suite)."""
    conn: MongoClient[dict[str, Any]]
    with MongoClient(server) as conn:
        db: Database[dict[str, Any]] = conn["olddb"]
        for name in db.list_collection_names():
            db.drop_collection(name)
        db.people.insert_many(_people(600))
        db.people.create_index([("email", ASCENDING)], unique=True, name="email_unique")
        db.notes.insert_many([{"_id": i, "text": f"note {i}"} for i in range(100)])
        backup = tmp_path / "older"
        mongo.backup(server, "olddb", backup)
        want = mongo.fingerprint(server, "olddb", ["notes", "people"])
        db.people.delete_many({"n": {"$lt": 200}})
        db.people.drop_index("email_unique")
        db.people.update_many({"n": {"$gte": 500}}, {"$set": {"email": "merged"}})
        db.people.insert_one({"_id": "added", "email": "added@example.test", "n": -1})
        db.drop_collection("notes")
    manifest = json.loads((backup / mongo.MANIFEST).read_text())
    for entry in manifest["collections"].values():
        (backup / entry.pop("records")).unlink()
        entry.pop("digest")
    (backup / mongo.MANIFEST).write_text(json.dumps(manifest))
    report = mongo.restore(server, "olddb", backup)
    assert report.equal and report.atomic == "database", report.to_json()
    assert mongo.fingerprint(server, "olddb", ["notes", "people"]) == want
