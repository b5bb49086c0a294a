"""Every event of a drill on one monotonic clock; phases and time-to-recover are derived from
the events, never measured a second time, so the report and the verdict cannot disagree.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

from rollback_drill.spec import DecisionRow

FAULT_INJECTED = "fault_injected"
DETECTED = "detected"
DECIDED = "decided"
ROLLBACK_STARTED = "rollback_started"
ROLLBACK_FINISHED = "rollback_finished"
VERIFIED = "verified"
MARKERS = (FAULT_INJECTED, DETECTED, DECIDED, ROLLBACK_STARTED, ROLLBACK_FINISHED, VERIFIED)


@dataclass(frozen=True)
class Event:
    name: str
    kind: str  # "marker", "step", "check"
    at_s: float  # seconds since the timeline started
    duration_s: float = 0.0
    ok: bool = True
    detail: dict[str, Any] = field(default_factory=dict)


class TimelineError(RuntimeError):
    pass


@dataclass(frozen=True)
class Verdict:
    """The decision matrix applied to a measured time-to-recover."""

    severity: str
    rollback_type: str
    budget_s: float
    time_to_recover_s: float

    @property
    def within_budget(self) -> bool:
        return self.time_to_recover_s < self.budget_s

    def summary(self) -> str:
        state = "within" if self.within_budget else "OVER"
        return (
            f"time-to-recover {self.time_to_recover_s:.2f} s {state} the {self.severity} "
            f"budget of {self.budget_s:.0f} s ({self.rollback_type} rollback)"
        )


class Timeline:
    def __init__(self) -> None:
        self._t0 = time.monotonic()
        self.started_wall = time.time()
        self.events: list[Event] = []

    def now(self) -> float:
        return time.monotonic() - self._t0

    def mark(self, name: str, **detail: Any) -> Event:
        if name in MARKERS and self.has(name):
            raise TimelineError(f"marker {name!r} recorded twice")
        event = Event(name, "marker", self.now(), detail=detail)
        self.events.append(event)
        return event

    @contextmanager
    def step(self, name: str, **detail: Any) -> Iterator[dict[str, Any]]:
        """Time a step; the yielded dict collects details to record with it."""
        start = self.now()
        extra: dict[str, Any] = dict(detail)
        ok = False
        try:
            yield extra
            ok = True
        finally:
            self.events.append(Event(name, "step", start, self.now() - start, ok, extra))

    def record_check(self, name: str, ok: bool, duration_s: float, **detail: Any) -> None:
        self.events.append(Event(name, "check", self.now() - duration_s, duration_s, ok, detail))

    def has(self, name: str) -> bool:
        return any(e.kind == "marker" and e.name == name for e in self.events)

    def at(self, name: str) -> float:
        for event in self.events:
            if event.kind == "marker" and event.name == name:
                return event.at_s
        raise TimelineError(f"marker {name!r} was never recorded")

    def phases(self) -> dict[str, float]:
        """detect, decide, execute, verify: the spans between consecutive markers present."""
        spans = {
            "detect": (FAULT_INJECTED, DETECTED),
            "decide": (DETECTED, ROLLBACK_STARTED),
            "execute": (ROLLBACK_STARTED, ROLLBACK_FINISHED),
            "verify": (ROLLBACK_FINISHED, VERIFIED),
        }
        return {
            phase: round(self.at(end) - self.at(start), 4)
            for phase, (start, end) in spans.items()
            if self.has(start) and self.has(end)
        }

    def time_to_recover(self) -> float:
        """From detection to verified green: the span the decision matrix budgets."""
        return self.at(VERIFIED) - self.at(DETECTED)

    def outage(self) -> float:
        """From the fault to verified green: what users lived through."""
        return self.at(VERIFIED) - self.at(FAULT_INJECTED)

    def judge(self, row: DecisionRow) -> Verdict:
        return Verdict(row.severity, row.rollback_type, row.budget_s, self.time_to_recover())

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "started_wall": self.started_wall,
            "events": [asdict(e) for e in self.events],
            "phases": self.phases(),
        }
        if self.has(VERIFIED) and self.has(DETECTED):
            data["time_to_recover_s"] = round(self.time_to_recover(), 4)
        if self.has(VERIFIED) and self.has(FAULT_INJECTED):
            data["outage_s"] = round(self.outage(), 4)
        return data
