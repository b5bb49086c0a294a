"""Benchmark: the harness's backup, restore and fingerprint of one large collection, in
documents per second, beside a plain pymongo scan of the same data (the floor).

A SecantusDB of the benchmark's own (started as the local stack starts it, `stores.secantus`)
gets one collection of `--docs` (default 1 000 000) user documents shaped as the reference
app's (`safepsy_app.seed_data.user_document`: id, e-mail, PBKDF2-shaped password hash, DID,
creation time; the hash's bytes derived, not computed: 1 000 000 real ones take minutes) and
the unique e-mail index. Then, interleaved so each sees the same machine load, `--runs` times:

- scan (floor): `for doc in collection.find({})`, pymongo's defaults (documents decoded)
- raw scan: `find_raw_batches`, bytes only - the fastest the server hands the data out
- fingerprint: `stores.mongo.fingerprint` (a digest per document, sorted, hashed)
- fingerprint, before: the same digests read as the fingerprint read them before this
  benchmark existed (each batch hashed before the next is asked for), for comparison
- backup: `stores.mongo.backup` (raw BSON file, checksums, per-document records, indexes)
- restore, damaged: the collection damaged as the migration drill's release damages 100 000
  users (10 000 documents altered, 5 000 deleted), then `stores.mongo.restore` of the backup
  (only the difference written, in one transaction, then all of it verified)
- restore, empty: the backup restored into an empty database (every document inserted,
  the index built, then verified against the archive)

Prints the medians as documents/second (documents in the collection over the seconds) with
each one's ratio to the floor, and CPU seconds of the server and of the harness; target:
fingerprint >= 80 % of the scan. Asserts nothing (a shared, noisy machine).
Run: .venv/bin/python benchmarks/bench_stores.py [--docs N] [--runs N] [--keep DIR]
(`--keep DIR` keeps the populated server's data in DIR and reuses it next time.)
"""

from __future__ import annotations

import argparse
import base64
import functools
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from bson.raw_bson import RawBSONDocument
from pymongo import ASCENDING, DeleteOne, MongoClient, UpdateOne
from pymongo.collection import Collection

from rollback_drill.process import proc
from rollback_drill.stores import bsonscan, livescan, mongo, secantus
from rollback_drill.stores.fingerprint import pack

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures" / "safepsy" / "app"))
from safepsy_app.seed_data import derive, user_document, user_id

DB = "bench"
RESTORED = "bench_restored"
COLLECTION = "users"
SEED = 42
ALTERED, LOST = 10_000, 5_000
INSERT_BATCH = 10_000


def fake_hash(index: int) -> str:
    """A password hash of the seed's shape (pbkdf2_sha256$1000$salt$digest), bytes derived."""
    salt = base64.b64encode(derive(SEED, "salt", index)[:16]).decode()
    digest = base64.b64encode(derive(SEED, "hash", index)).decode()
    return f"pbkdf2_sha256$1000${salt}${digest}"


def documents(count: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for index in range(1, count + 1):
        batch.append(user_document(SEED, index, fake_hash(index)))
        if len(batch) == INSERT_BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def populate(uri: str, count: int) -> float | None:
    """Fill the collection unless it already holds `count` documents; the insert rate."""
    conn: MongoClient[dict[str, Any]]
    with MongoClient(uri, directConnection=True) as conn:
        coll: Collection[dict[str, Any]] = conn[DB][COLLECTION]
        if coll.estimated_document_count() == count:
            return None
        conn.drop_database(DB)
        started = time.monotonic()
        for batch in documents(count):
            coll.insert_many(batch, ordered=False)
        coll.create_index([("email", ASCENDING)], unique=True, name="email_unique")
        return count / (time.monotonic() - started)


def plain_scan(uri: str) -> int:
    conn: MongoClient[dict[str, Any]]
    with MongoClient(uri, directConnection=True) as conn:
        return sum(1 for _ in conn[DB][COLLECTION].find({}))


def raw_scan(uri: str) -> int:
    raw: MongoClient[RawBSONDocument]
    with MongoClient(uri, directConnection=True, document_class=RawBSONDocument) as raw:
        return sum(len(batch) for batch in raw[DB][COLLECTION].find_raw_batches({}))


def fingerprint(uri: str) -> int:
    return mongo.fingerprint(uri, DB, [COLLECTION], timeout_s=5.0).collections[COLLECTION].count


def fingerprint_before(uri: str) -> int:
    """The fingerprint's reading before prefetching: fetch a batch, hash it, then ask."""
    records: list[bytes] = []
    with mongo.client(uri, 5.0) as conn:
        for batch in conn[DB][COLLECTION].find_raw_batches({}, batch_size=livescan.BATCH):
            records.extend(bsonscan.records(cast(bytes, batch)))
    return len(pack(records)[0]) // bsonscan.RECORD_BYTES


def damage(uri: str, count: int) -> None:
    """What release 1.10.0's migration does to 100 000 users: 10 000 rewritten, 5 000 gone."""
    changes: list[UpdateOne | DeleteOne] = []
    for i in range(3, count, max(1, count // ALTERED)):
        new = {"$set": {"email": f"merged{i}@example.test"}}
        changes.append(UpdateOne({"_id": user_id(i)}, new))
    changes = changes[:ALTERED]
    changes += [DeleteOne({"_id": user_id(i)})
                for i in range(5, count, max(1, count // LOST))][:LOST]  # fmt: skip
    conn: MongoClient[dict[str, Any]]
    with MongoClient(uri, directConnection=True) as conn:
        conn[DB][COLLECTION].bulk_write(changes, ordered=False)


@dataclass
class Figures:
    """One operation's runs: wall seconds, and CPU seconds of the server and of this process
    (CPU is steady where wall time is not, on a machine shared with other runs)."""

    wall: list[float] = field(default_factory=list)
    server_cpu: list[float] = field(default_factory=list)
    client_cpu: list[float] = field(default_factory=list)

    def median(self) -> float:
        return statistics.median(self.wall)


def timed(server: secantus.Server, figures: Figures, fn: Callable[[], Any]) -> Any:
    wall, cpu, server_cpu = time.monotonic(), time.process_time(), server.cpu_seconds()
    result = fn()
    figures.wall.append(time.monotonic() - wall)
    figures.client_cpu.append(time.process_time() - cpu)
    figures.server_cpu.append(server.cpu_seconds() - server_cpu)
    return result


def restore(uri: str, database: str, archive: Path) -> mongo.RestoreReport:
    report = mongo.restore(uri, database, archive, timeout_s=10.0)
    if not report.equal:
        print(f"restore NOT equal to the backup: {report.to_json()}")
    return report


def measure(server: secantus.Server, count: int, runs: int, work: Path) -> dict[str, Figures]:
    uri = server.uri
    figures: dict[str, Figures] = {}
    phases: dict[str, list[dict[str, float]]] = {}
    for run in range(runs):
        archive = work / f"backup-{run}"
        operations: dict[str, Callable[[], Any]] = {
            "scan (floor)": lambda: plain_scan(uri),
            "raw scan": lambda: raw_scan(uri),
            "fingerprint": lambda: fingerprint(uri),
            "fingerprint, before": lambda: fingerprint_before(uri),
            "backup": functools.partial(mongo.backup, uri, DB, archive),
        }
        for name, operation in operations.items():
            timed(server, figures.setdefault(name, Figures()), operation)
        restores = {"restore, damaged": DB, "restore, empty": RESTORED}
        for name, database in restores.items():
            if database == DB:
                damage(uri, count)
            else:
                drop(uri, database)
            report = timed(server, figures.setdefault(name, Figures()),
                           functools.partial(restore, uri, database, archive))  # fmt: skip
            phases.setdefault(name, []).append(report.seconds)
            if run == 0:
                print(f"{name}: atomic {report.atomic}; "
                      + ", ".join(f"{c.name} {c.how}" for c in report.collections))  # fmt: skip
        drop(uri, RESTORED)
        shutil.rmtree(archive)
        print(f"run {run + 1}/{runs}: " + ", ".join(f"{k} {v.wall[-1]:.2f} s" for k, v in
              figures.items()) + f" (load {os.getloadavg()[0]:.1f})", flush=True)  # fmt: skip
    for name, runs_seen in phases.items():
        medians = {k: statistics.median(p.get(k, 0.0) for p in runs_seen) for k in runs_seen[0]}
        print(f"{name} phases, median s: " + ", ".join(f"{k} {v:.2f}" for k, v in
              medians.items()))  # fmt: skip
    return figures


def drop(uri: str, database: str) -> None:
    conn: MongoClient[dict[str, Any]]
    with MongoClient(uri, directConnection=True) as conn:
        conn.drop_database(database)


def table(count: int, figures: dict[str, Figures]) -> None:
    floor = count / figures["scan (floor)"].median()
    print(f"\n{count} documents, median of {len(figures['scan (floor)'].wall)} runs")
    print(f"{'operation':14} {'wall s':>7} {'docs/s':>9} {'x floor':>8} {'server CPU s':>13} "
          f"{'harness CPU s':>14}")  # fmt: skip
    for name, fig in figures.items():
        rate = count / fig.median()
        print(f"{name:14} {fig.median():7.2f} {rate:9.0f} {rate / floor:8.2f} "
              f"{statistics.median(fig.server_cpu):13.2f} "
              f"{statistics.median(fig.client_cpu):14.2f}")  # fmt: skip
    ratio = count / figures["fingerprint"].median() / floor
    verdict = "met" if ratio >= 0.8 else "MISSED"
    print(f"fingerprint at {ratio:.0%} of the plain scan's rate (target >= 80 %: {verdict})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--docs", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="keep the server's data here, reuse it")
    args = parser.parse_args()
    work = proc.make_temp_dir("bench-stores")
    try:
        storage = args.keep.resolve() if args.keep else work / "data"
        with secantus.running(storage, work / "secantusd.log") as server:
            rate = populate(server.uri, args.docs)
            if rate is None:
                print(f"reusing {args.docs} documents in {storage}")
            else:
                print(f"inserted {args.docs} documents at {rate:.0f} docs/s (insert_many)")
            with tempfile.TemporaryDirectory(dir=work) as tmp:
                table(args.docs, measure(server, args.docs, args.runs, Path(tmp)))
    finally:
        proc.remove_temp_dir(work)


if __name__ == "__main__":
    main()
