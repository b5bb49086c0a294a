"""Integrity monitoring that costs nothing until something happens: the database's change
stream, filtered to the collections no user writes to (the integrity collections compared
exactly, such as `users`). A write there - insert, update, replace, delete, drop - fails the
`integrity.writes` check the alert engine hears (with counts per collection and operation
since the drill began) for as long as such writes keep coming and `HOLD_S` after the last:
the rule "writes where no user writes, in the last few seconds". Whether the data still
differs from the baseline is then the integrity check's question, in the assessment.

Counting documents would be the obvious probe, but SecantusDB counts by scanning (about a
second per 100 000 documents), too dear to repeat twice a second under load; a fingerprint
is dearer still. The stream sees a data-damaging migration the moment it writes, at any
scale. When the stream breaks (the database stopped during a rollback), the watch resumes
after its last event or, when the server cannot, starts again from now.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from pymongo import MongoClient
from pymongo.errors import PyMongoError

from rollback_drill.stack.target import Target
from rollback_drill.steps.timeline import Timeline

NAME = "integrity.writes"
CATEGORY = "integrity"
OPERATIONS = ("insert", "update", "replace", "delete", "drop", "rename", "dropDatabase")
HOLD_S = 3.0
Report = Callable[[str, str, bool, str, float], None]


class DataWatch:
    """See the module docstring; a context manager running one thread."""

    def __init__(
        self,
        target: Callable[[], Target],
        collections: Sequence[str],
        report: Report,
        timeline: Timeline,
    ) -> None:
        self._target = target
        self._collections = list(collections)
        self._report = report
        self._timeline = timeline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="data-watch", daemon=True)
        self.seen: Counter[tuple[str, str]] = Counter()  # (collection, operation) -> events
        self.broken: str | None = None
        self._last: float | None = None  # timeline seconds of the last write seen

    def __enter__(self) -> DataWatch:
        if self._collections:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def summary(self) -> str:
        parts = [f"{coll} {op} x{n}" for (coll, op), n in sorted(self.seen.items())]
        return "written since the drill began, where no user writes: " + ", ".join(parts)

    def _publish(self) -> None:
        if self._last is None:
            return
        now = self._timeline.now()
        firing = now - self._last <= HOLD_S
        self._report(NAME, CATEGORY, not firing, self.summary(), now)

    def _pipeline(self) -> list[dict[str, Any]]:
        return [
            {
                "$match": {
                    "ns.coll": {"$in": self._collections},
                    "operationType": {"$in": list(OPERATIONS)},
                }
            }
        ]

    def _run(self) -> None:
        resume: Any = None
        while not self._stop.is_set():
            target = self._target()
            client: MongoClient[dict[str, Any]] = MongoClient(
                target.mongodb_uri.reveal(), serverSelectionTimeoutMS=1000,
                socketTimeoutMS=5000, directConnection=True,
            )  # fmt: skip
            resumed_from, events = resume, 0
            try:
                db = client[target.mongodb_database]
                with db.watch(self._pipeline(), resume_after=resume, max_await_time_ms=200) as s:
                    while not self._stop.is_set():
                        change = s.try_next()
                        if change is not None:
                            resume, events = s.resume_token, events + 1
                            key = (str(change["ns"].get("coll")), str(change["operationType"]))
                            self.seen[key] += 1
                            self._last = self._timeline.now()
                        self._publish()
            except PyMongoError as exc:
                if resumed_from is not None and events == 0:
                    resume = None  # the server cannot resume there (it restarted): from now on
                self.broken = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
                self._stop.wait(0.5)
            finally:
                client.close()


__all__ = ["CATEGORY", "NAME", "DataWatch"]
