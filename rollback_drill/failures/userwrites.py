"""What users write during a data drill, made by the harness so it knows every write that was
acknowledged: the measure of what a restore loses (the recovery point) and of what a cache
flush costs (sessions that must sign in again).

`AckWriter` writes continuously while the drill runs - logins and DID registrations through
the real backend, and inserts into a canary collection with a journalled write concern - and
keeps each acknowledged write with the moment it was acknowledged. After a restore,
`recovery_point` looks for every one of them where it landed: a write acknowledged before the
backup began must be there (the backup holds everything acknowledged before it started);
those after it are what the restore lost.

`SessionHolder` keeps signed-in sessions as users' browsers do, and asks, token by token,
whether each still works. Tokens never leave this module's objects: no log, no report.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import httpx
from pymongo import MongoClient, WriteConcern
from pymongo.errors import PyMongoError

from rollback_drill.process.wait import Wait
from rollback_drill.stack.target import Target

CANARY = "rollback_drill_canary"
"""The canary collection the writer inserts into, in the application's database."""

Kind = Literal["login", "did registration", "canary"]
When = Literal["before the backup", "during the backup", "after the backup"]


@dataclass(frozen=True)
class Ack:
    """One acknowledged write: where it landed and what must be there."""

    kind: Kind
    collection: str
    key: str  # the document's _id
    value: str  # what the document must hold (a DID's txHash, a canary's sequence)
    at: float  # epoch seconds, when the acknowledgement arrived

    def describe(self) -> str:
        moment = datetime.fromtimestamp(self.at, UTC).strftime("%H:%M:%S.%f")[:-3]
        return f"{self.kind} acknowledged {moment} UTC ({self.collection})"


class AckWriter:
    """Acknowledged writes, one round every `interval_s`, in a thread; see the module
    docstring. Failed attempts (the backend stopped, the database away) are counted, not
    kept: only an acknowledged write can be lost."""

    def __init__(self, target: Target, interval_s: float = 0.2, did_every: int = 4) -> None:
        self._target = target
        self._interval = interval_s
        self._did_every = did_every
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="ack-writer", daemon=True)
        self.acks: list[Ack] = []
        self.failed: Counter[str] = Counter()
        self.last_error: str | None = None
        self.run_id = hashlib.sha256(str(time.time_ns()).encode()).hexdigest()[:8]

    def __enter__(self) -> AckWriter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop writing (a service that uses the database stops); idempotent."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=15)

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def snapshot(self) -> list[Ack]:
        with self._lock:
            return list(self.acks)

    def wait_for(self, count: int, since: float = 0.0, timeout_s: float = 30.0) -> None:
        """Until `count` writes of every kind were acknowledged after `since` (epoch)."""

        def enough() -> bool:
            kinds = Counter(a.kind for a in self.snapshot() if a.at >= since)
            return all(kinds[k] >= count for k in ("login", "did registration", "canary"))

        Wait(f"{count} acknowledged writes of each kind", timeout_s, 0.05).until(enough)

    # -- the writing thread ---------------------------------------------------------------------
    def _keep(self, ack: Ack) -> None:
        with self._lock:
            self.acks.append(ack)

    def _failed(self, kind: str, error: Exception) -> None:
        self.failed[kind] += 1
        self.last_error = f"{kind}: {type(error).__name__}: {str(error)[:200]}"

    def _run(self) -> None:
        target = self._target
        body = {"email": target.test_email, "password": target.test_password.reveal()}
        mongo: MongoClient[dict[str, Any]] = MongoClient(
            target.mongodb_uri.reveal(), serverSelectionTimeoutMS=1000, socketTimeoutMS=3000
        )
        canary = mongo[target.mongodb_database].get_collection(
            CANARY, write_concern=WriteConcern("majority", j=True)
        )
        token: str | None = None
        seq = 0
        with httpx.Client(base_url=target.backend_url, timeout=3.0, trust_env=False) as http:
            while not self._stop.is_set():
                seq += 1
                key = f"{self.run_id}-{seq:06d}"
                try:
                    canary.insert_one({"_id": key, "seq": seq, "at": datetime.now(UTC)})
                    self._keep(Ack("canary", CANARY, key, str(seq), time.time()))
                except PyMongoError as exc:
                    self._failed("canary", exc)
                try:
                    answer = http.post("/api/auth/login", json=body)
                    if answer.status_code == 200:
                        token = str(answer.json()["token"])
                        digest = hashlib.sha256(token.encode()).hexdigest()  # the session's _id
                        self._keep(Ack("login", "sessions", digest, "", time.time()))
                    else:
                        self.failed["login"] += 1
                except (httpx.HTTPError, ValueError, KeyError) as exc:
                    self._failed("login", exc)
                if token and seq % self._did_every == 0:
                    self._register(http, token)
                self._stop.wait(self._interval)
        mongo.close()

    def _register(self, http: httpx.Client, token: str) -> None:
        try:
            answer = http.post(
                "/api/did/register", headers={"Authorization": f"Bearer {token}"}, timeout=10.0
            )
            if answer.status_code == 201:
                data = answer.json()
                self._keep(
                    Ack("did registration", "did_documents", str(data["did"]),
                        str(data["txHash"]), time.time())
                )  # fmt: skip
            else:
                self.failed["did registration"] += 1
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            self._failed("did registration", exc)


@dataclass(frozen=True)
class RecoveryPoint:
    """What a restore kept of the writes users had acknowledged: the runbook's "Check for data
    loss risk", measured after the fact."""

    backup_started: float  # epoch: the backup holds every write acknowledged before this
    backup_finished: float | None
    fault_at: float  # epoch: when the fault was complete
    acknowledged: int
    lost: tuple[Ack, ...]
    kept_last: Ack | None
    newest: Ack | None
    by_kind: dict[str, dict[str, int]] = field(default_factory=dict)
    lost_before_backup: tuple[Ack, ...] = ()

    @property
    def ok(self) -> bool:
        """No write acknowledged before the backup began was lost."""
        return not self.lost_before_backup

    @property
    def backup_to_fault_s(self) -> float:
        return self.fault_at - self.backup_started

    @property
    def data_lost_s(self) -> float:
        """The span of acknowledged writes the restore did not keep: from the last one kept
        to the newest acknowledged (0 when nothing was lost)."""
        if not self.lost or self.newest is None:
            return 0.0
        since = self.kept_last.at if self.kept_last else self.backup_started
        return max(0.0, self.newest.at - since)

    def explain(self) -> str:
        last = self.kept_last.describe() if self.kept_last else "none"
        text = (
            f"{len(self.lost)} of {self.acknowledged} acknowledged writes lost, "
            f"{self.data_lost_s:.1f} s of data; last write kept: {last}; the backup began "
            f"{self.backup_to_fault_s:.1f} s before the fault"
        )
        if self.lost_before_backup:
            text += (
                f"; {len(self.lost_before_backup)} written BEFORE the backup began were lost "
                f"(first: {self.lost_before_backup[0].describe()})"
            )
        return text

    def to_json(self) -> dict[str, Any]:
        return {
            "acknowledged_writes": self.acknowledged,
            "writes_lost": len(self.lost),
            "seconds_of_data_lost": round(self.data_lost_s, 3),
            "seconds_backup_to_fault": round(self.backup_to_fault_s, 3),
            "last_write_kept": None if self.kept_last is None else _ack_json(self.kept_last),
            "newest_write": None if self.newest is None else _ack_json(self.newest),
            "lost_before_backup": [_ack_json(a) for a in self.lost_before_backup],
            "by_kind": self.by_kind,
            "backup_started_utc": _utc(self.backup_started),
            "backup_finished_utc": _utc(self.backup_finished) if self.backup_finished else None,
            "fault_utc": _utc(self.fault_at),
            "ok": self.ok,
            "explanation": self.explain(),
        }


def _utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")


def _ack_json(ack: Ack) -> dict[str, Any]:
    return {"kind": ack.kind, "collection": ack.collection, "acknowledged_utc": _utc(ack.at)}


def when(ack: Ack, started: float, finished: float | None) -> When:
    if ack.at < started:
        return "before the backup"
    if finished is not None and ack.at <= finished:
        return "during the backup"
    return "after the backup"


def recovery_point(
    acks: list[Ack],
    target: Target,
    backup_started: float,
    backup_finished: float | None,
    fault_at: float,
) -> RecoveryPoint:
    """Look for every acknowledged write where it landed (one lookup by `_id` each)."""
    kept: list[Ack] = []
    lost: list[Ack] = []
    client: MongoClient[dict[str, Any]] = MongoClient(
        target.mongodb_uri.reveal(), serverSelectionTimeoutMS=2000, socketTimeoutMS=10_000
    )
    try:
        db = client[target.mongodb_database]
        registrations = [a for a in acks if a.kind == "did registration"]
        for ack in acks:
            doc = db[ack.collection].find_one({"_id": ack.key})
            if ack.kind == "did registration":
                # The document holds the newest registration: this one, or a later one kept.
                later = {a.value for a in registrations if a.at >= ack.at}
                there = doc is not None and str(doc.get("txHash")) in later
            else:
                there = doc is not None
            (kept if there else lost).append(ack)
    finally:
        client.close()
    counts: dict[str, dict[str, int]] = {}
    for ack in acks:
        row = counts.setdefault(ack.kind, {"acknowledged": 0, "kept": 0, "lost": 0})
        row["acknowledged"] += 1
        row["lost" if ack in lost else "kept"] += 1
    return RecoveryPoint(
        backup_started,
        backup_finished,
        fault_at,
        len(acks),
        tuple(lost),
        max(kept, key=lambda a: a.at, default=None),
        max(acks, key=lambda a: a.at, default=None),
        counts,
        tuple(a for a in lost if when(a, backup_started, backup_finished) == "before the backup"),
    )


@dataclass(frozen=True)
class SessionFate:
    """Each held session, asked once: still signed in, must sign in again, or broken."""

    held: int
    kept: int
    must_sign_in_again: int
    broken: int
    statuses: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        return {
            "sessions_held": self.held,
            "still_signed_in": self.kept,
            "must_sign_in_again": self.must_sign_in_again,
            "broken": self.broken,
            "answers": self.statuses,
        }


class SessionHolder:
    """Signed-in sessions kept by the harness, used as a signed-in page does (GET
    /api/auth/me with the session's bearer token)."""

    def __init__(self, target: Target) -> None:
        self._target = target
        self._tokens: list[str] = []

    def __len__(self) -> int:
        return len(self._tokens)

    def sign_in(self, count: int) -> None:
        target = self._target
        body = {"email": target.test_email, "password": target.test_password.reveal()}
        with httpx.Client(base_url=target.backend_url, timeout=5.0, trust_env=False) as http:
            for _ in range(count):
                answer = http.post("/api/auth/login", json=body)
                if answer.status_code != 200:
                    raise RuntimeError(f"sign-in for a held session: HTTP {answer.status_code}")
                self._tokens.append(str(answer.json()["token"]))

    def ask(self) -> SessionFate:
        """Every held session asked once; a session told to sign in again is dropped, as a
        browser drops it."""
        statuses: Counter[str] = Counter()
        keep: list[str] = []
        with httpx.Client(base_url=self._target.backend_url, timeout=5.0, trust_env=False) as http:
            for token in self._tokens:
                try:
                    code = http.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
                    status = str(code.status_code)
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                statuses[status] += 1
                if status != "401":
                    keep.append(token)
        held = len(self._tokens)
        self._tokens = keep
        ok = statuses.get("200", 0)
        again = statuses.get("401", 0)
        return SessionFate(held, ok, again, held - ok - again, dict(statuses))


__all__ = [
    "CANARY",
    "Ack",
    "AckWriter",
    "RecoveryPoint",
    "SessionFate",
    "SessionHolder",
    "recovery_point",
]
