"""THE event stream of a drill: every phase, step, check, alert, mark and artifact is emitted
here once, on one monotonic clock. Phases and time-to-recover are derived from these events,
never measured a second time, and every reader of a drill - Allure steps, the drill record,
the chart, the console summary - is a listener or reads the finished list. Nothing here
imports a reader: listeners register themselves (the pytest plugin wires Allure).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from rollback_drill.files.drillspec import DecisionRow
from rollback_drill.process.errors import TimelineError

log = logging.getLogger(__name__)

EventKind = Literal["phase", "step", "check", "alert", "marker", "artifact"]
ArtifactMedia = Literal["text", "json", "png"]

STEADY_STATE = "steady_state"
CHANGE_STARTED = "change_started"
FAULT_INJECTED = "fault_injected"
DETECTED = "detected"
DECIDED = "decided"
NOTIFIED = "notified"  # the first message of the Communication Plan was delivered
ROLLBACK_STARTED = "rollback_started"
ROLLBACK_FINISHED = "rollback_finished"
VERIFIED = "verified"
MARKERS = (
    STEADY_STATE,
    CHANGE_STARTED,
    FAULT_INJECTED,
    DETECTED,
    DECIDED,
    NOTIFIED,
    ROLLBACK_STARTED,
    ROLLBACK_FINISHED,
    VERIFIED,
)
# The phases of what users lived through, each the span between two markers.
# The change (a deploy, a configuration edit) starts the fault phase; FAULT_INJECTED marks
# when it is complete and its defect live.
USER_PHASES: dict[str, tuple[str, str]] = {
    "steady": (STEADY_STATE, CHANGE_STARTED),
    "fault": (CHANGE_STARTED, ROLLBACK_STARTED),
    "rollback": (ROLLBACK_STARTED, ROLLBACK_FINISHED),
    "verified": (ROLLBACK_FINISHED, VERIFIED),
}


@dataclass(frozen=True)
class Artifact:
    """Something a step produced for readers: a file it wrote, or data it measured."""

    name: str
    media: ArtifactMedia = "text"
    path: Path | None = None
    data: Any = None
    sensitive: bool = False  # holds secrets: listed in the record, never attached in clear


@dataclass(frozen=True)
class Event:
    name: str
    kind: EventKind
    at_s: float  # seconds since the timeline started
    duration_s: float = 0.0
    ok: bool = True
    detail: dict[str, Any] = field(default_factory=dict)
    span: int = 0  # id of this span (phase, step), or of the span an instant event fell in
    parent: int = 0  # id of the enclosing span; 0 at the top
    error: str | None = None  # why a span failed
    artifact: Artifact | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        if self.artifact is not None:
            data["artifact"] = {
                "name": self.artifact.name,
                "media": self.artifact.media,
                "path": str(self.artifact.path) if self.artifact.path else None,
                "sensitive": self.artifact.sensitive,
            }
        return data


class TimelineListener(Protocol):
    """A reader of the stream. `started` opens a span; `emitted` is called for every event
    when it is final (instant events at once, spans when they close)."""

    def started(self, span: Event) -> None: ...

    def emitted(self, event: Event) -> None: ...


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


class SpanRecord:
    """What a running phase or step may add before it closes: details and artifacts."""

    def __init__(self, timeline: Timeline, span: int) -> None:
        self._timeline = timeline
        self.span = span
        self.detail: dict[str, Any] = {}

    def update(self, values: dict[str, Any]) -> None:
        self.detail.update(values)

    def attach(self, artifact: Artifact) -> None:
        self._timeline.attach(artifact)


class Timeline:
    """See the module docstring. Thread-safe: the load reader and alert evaluator emit from
    their own threads; spans are opened and closed by the drill's thread only."""

    def __init__(self, listeners: list[TimelineListener] | None = None) -> None:
        self._t0 = time.monotonic()
        self.started_wall = time.time()
        self.events: list[Event] = []
        self._listeners: list[TimelineListener] = list(listeners or [])
        self._lock = threading.RLock()
        self._next_id = 1
        self._open: list[int] = []  # stack of open span ids (drill thread)
        self._owner = threading.current_thread()  # spans nest on this thread only

    @property
    def t0_monotonic(self) -> float:
        """time.monotonic() at the start: other processes' CLOCK_MONOTONIC stamps convert
        to this timeline by subtracting it."""
        return self._t0

    def now(self) -> float:
        return time.monotonic() - self._t0

    def listen(self, listener: TimelineListener) -> None:
        self._listeners.append(listener)

    # -- emitting -------------------------------------------------------------------------------
    def _notify(self, method: str, event: Event) -> None:
        for listener in self._listeners:
            try:
                getattr(listener, method)(event)
            except Exception:  # a broken reader must not break the drill (locust's rule)
                log.exception("timeline listener %r failed on %s", listener, event.name)

    def _emit(self, event: Event) -> Event:
        with self._lock:
            self.events.append(event)
        self._notify("emitted", event)
        return event

    def _current(self) -> int:
        return self._open[-1] if self._open and threading.current_thread() is self._owner else 0

    def mark(self, name: str, **detail: Any) -> Event:
        if name in MARKERS and self.has(name):
            raise TimelineError(f"marker {name!r} recorded twice")
        return self._emit(Event(name, "marker", self.now(), detail=detail, parent=self._current()))

    def alert(self, name: str, at_s: float, ok: bool, **detail: Any) -> Event:
        """An alert fired (ok=False) or resolved (ok=True) at `at_s` (when its window said so)."""
        return self._emit(Event(name, "alert", at_s, ok=ok, detail=detail, parent=0))

    def check(
        self, name: str, ok: bool, duration_s: float, *, summary: str, evidence: dict[str, Any]
    ) -> Event:
        return self._emit(
            Event(
                name,
                "check",
                max(self.now() - duration_s, 0.0),
                duration_s,
                ok,
                {"summary": summary, "evidence": evidence},
                parent=self._current(),
            )
        )

    def attach(self, artifact: Artifact) -> Event:
        return self._emit(
            Event(artifact.name, "artifact", self.now(), artifact=artifact, parent=self._current())
        )

    @contextmanager
    def _span(self, kind: EventKind, name: str, detail: dict[str, Any]) -> Iterator[SpanRecord]:
        with self._lock:
            span_id = self._next_id
            self._next_id += 1
        parent = self._current()
        start = self.now()
        record = SpanRecord(self, span_id)
        record.detail.update(detail)
        self._notify("started", Event(name, kind, start, span=span_id, parent=parent))
        self._open.append(span_id)
        ok, error = False, None
        try:
            yield record
            ok = True
        except BaseException as exc:
            error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            self._open.pop()
            self._emit(
                Event(
                    name,
                    kind,
                    start,
                    self.now() - start,
                    ok,
                    record.detail,
                    span=span_id,
                    parent=parent,
                    error=error,
                )
            )

    def phase(self, name: str, **detail: Any) -> AbstractContextManager[SpanRecord]:
        """A phase of the drill (baseline, steady state, detect, assess, rollback, verify)."""
        return self._span("phase", name, detail)

    def step(self, name: str, **detail: Any) -> AbstractContextManager[SpanRecord]:
        """A step inside a phase (a procedure step names its runbook command in `detail`)."""
        return self._span("step", name, detail)

    # -- reading --------------------------------------------------------------------------------
    def of_kind(self, kind: EventKind) -> list[Event]:
        with self._lock:
            return [e for e in self.events if e.kind == kind]

    def has(self, name: str) -> bool:
        return any(e.name == name for e in self.of_kind("marker"))

    def at(self, name: str) -> float:
        for event in self.of_kind("marker"):
            if event.name == name:
                return event.at_s
        raise TimelineError(f"marker {name!r} was never recorded")

    def between(self, start: str, end: str) -> tuple[float, float] | None:
        """The span between two markers, or None when either is missing."""
        if self.has(start) and self.has(end):
            return self.at(start), self.at(end)
        return None

    def phases(self) -> dict[str, float]:
        """detect, decide, execute, verify: the spans between consecutive markers present;
        notify (detection to the first delivered message) when the drill told anyone."""
        spans = {
            "detect": (FAULT_INJECTED, DETECTED),
            "notify": (DETECTED, NOTIFIED),
            "decide": (DETECTED, ROLLBACK_STARTED),
            "execute": (ROLLBACK_STARTED, ROLLBACK_FINISHED),
            "verify": (ROLLBACK_FINISHED, VERIFIED),
        }
        return {
            phase: round(window[1] - window[0], 4)
            for phase, (start, end) in spans.items()
            if (window := self.between(start, end)) is not None
        }

    def user_phases(self) -> dict[str, tuple[float, float]]:
        """steady, fault, rollback, verified: the windows users lived through, as present."""
        return {
            name: window
            for name, (start, end) in USER_PHASES.items()
            if (window := self.between(start, end)) is not None
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
        with self._lock:
            events = sorted(self.events, key=lambda e: e.at_s)
        data: dict[str, Any] = {
            "started_wall": self.started_wall,
            "events": [e.to_json() for e in events],
            "phases": self.phases(),
        }
        if self.has(VERIFIED) and self.has(DETECTED):
            data["time_to_recover_s"] = round(self.time_to_recover(), 4)
        if self.has(VERIFIED) and self.has(FAULT_INJECTED):
            data["outage_s"] = round(self.outage(), 4)
        return data
