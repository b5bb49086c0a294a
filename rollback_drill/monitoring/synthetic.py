"""Synthetic monitoring: the runbook's checks that are cheap and safe to repeat (health,
connectivity, the user flows) run every half second through the whole drill, each result
fed to the alert engine. A bug that answers 200 with the wrong thing - a login that rejects
capitals, a chat that forgets the conversation - shows here, not in error rates."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Sequence

from rollback_drill.checks import ALL_CHECKS, Check
from rollback_drill.monitoring.alerts import AlertEngine
from rollback_drill.process.errors import CheckSkipped
from rollback_drill.stack.target import Target
from rollback_drill.steps.timeline import Timeline

MONITORED_CATEGORIES = ("health", "rollback", "connectivity", "chain", "functional")


def monitored(extra: Sequence[Check] = ()) -> list[Check]:
    """The checks synthetic monitoring repeats; sampled flows run as one probe per route."""
    chosen = [c for c in ALL_CHECKS if c.category in MONITORED_CATEGORIES]
    return chosen + [c for c in extra if c not in chosen]


class SyntheticMonitor:
    def __init__(
        self,
        target: Callable[[], Target],
        timeline: Timeline,
        alerts: AlertEngine,
        checks: Sequence[Check],
        interval_s: float = 0.5,
    ) -> None:
        self._target = target
        self._timeline = timeline
        self._alerts = alerts
        self._checks = list(checks)
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="synthetic", daemon=True)
        self.runs = 0

    def __enter__(self) -> SyntheticMonitor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=15)

    def _run(self) -> None:
        while not self._stop.is_set():
            # A round's results date from when its target was read: a round that began
            # before a deploy finished judges the old expectations, and must not count after.
            started = self._timeline.now()
            target = dataclasses.replace(self._target(), probe_once=True)
            for check in self._checks:
                if self._stop.is_set():
                    return
                try:
                    result = check.run(target)
                except CheckSkipped:
                    continue
                self._alerts.report_check(
                    check.name, check.category, result.ok, result.summary, started
                )
            self.runs += 1
            self._stop.wait(self._interval)
