"""What users saw during a drill: a background prober hitting the user-facing endpoints every
100 ms on the drill's own clock. Its samples give availability and response time over the
whole drill (the report's chart), measured, not inferred from the procedure's steps.

Given the stack's `target` (a callable) rather than one Target, it re-reads the endpoints
every round: a service replaced without a gap may answer on a new address afterwards (the
docker backend publishes the replacement on a port of its own), and the prober follows it
as monitoring follows a service through its discovery."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import httpx

from rollback_drill.stack.target import Target
from rollback_drill.steps.timeline import Timeline


@dataclass(frozen=True)
class Sample:
    at_s: float
    endpoint: str
    ok: bool
    latency_s: float
    status: int | None


class Monitor:
    def __init__(
        self,
        target: Target | Callable[[], Target],
        timeline: Timeline,
        interval_s: float = 0.1,
        timeout_s: float = 1.0,
    ) -> None:
        self._target = target
        target = self._current()
        self._verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=str(target.ca_file)) if target.ca_file else True
        )
        self._timeline = timeline
        self._interval = interval_s
        self._timeout = timeout_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="drill-monitor", daemon=True)
        self.samples: list[Sample] = []

    def __enter__(self) -> Monitor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self._timeout * len(self._endpoints()) + 1)

    def _current(self) -> Target:
        return self._target() if callable(self._target) else self._target

    def _endpoints(self) -> dict[str, str]:
        target = self._current()
        return {
            "frontend": target.frontend_url + "/",
            "backend": target.backend_url + "/health",
            "ai-chatbot": target.chatbot_url + "/health",
        }

    def _run(self) -> None:
        with httpx.Client(timeout=self._timeout, verify=self._verify, trust_env=False) as client:
            while not self._stop.is_set():
                for name, url in self._endpoints().items():
                    start = self._timeline.now()
                    try:
                        status: int | None = client.get(url).status_code
                    except httpx.HTTPError:
                        status = None
                    end = self._timeline.now()
                    self.samples.append(Sample(start, name, status == 200, end - start, status))
                self._stop.wait(self._interval)

    def recent(self, n: int) -> dict[str, list[Sample]]:
        """The last `n` probes of each endpoint, oldest first."""
        latest: dict[str, list[Sample]] = {}
        for sample in reversed(list(self.samples)):
            rows = latest.setdefault(sample.endpoint, [])
            if len(rows) < n:
                rows.append(sample)
        return {endpoint: rows[::-1] for endpoint, rows in latest.items()}

    def availability(self, start_s: float = 0.0, end_s: float = float("inf")) -> float | None:
        window = [s for s in self.samples if start_s <= s.at_s <= end_s]
        return sum(s.ok for s in window) / len(window) if window else None

    def to_json(self) -> list[dict[str, Any]]:
        return [asdict(s) for s in self.samples]
