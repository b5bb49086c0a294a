"""Waiting as a value: what is awaited, for how long, how often to look, which errors end the
wait at once. A timeout says what, how long, and the last thing the probe answered, so
"not detected within 30 s" comes with what monitoring did see. `holds` is the other half:
"and it stays so for a while" (a service that comes back must stay up).

The one wait of the project: start-up (`proc`, the stacks), detection and the alerts' settle
(engine, monitoring), load start, procedures' "until green" and "stays green", the
supervisor's stop; testcontainers' wait strategies (stack/docker_infra.py) are theirs."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from rollback_drill.process.errors import WaitTimeout


@dataclass(frozen=True)
class Wait:
    what: str
    timeout_s: float
    interval_s: float = 0.05
    fatal: tuple[type[Exception], ...] = ()

    def until(self, probe: Callable[[], bool]) -> float:
        """Poll until `probe` is true; return the seconds it took. A probe that raises is
        "not yet" (its error is remembered), except for the `fatal` types."""
        start = time.monotonic()
        last = "no answer yet"
        while True:
            try:
                if probe():
                    return time.monotonic() - start
                last = "not yet"
            except self.fatal:
                raise
            except Exception as exc:
                last = f"{type(exc).__name__}: {exc}"
            if time.monotonic() - start > self.timeout_s:
                raise WaitTimeout(
                    f"{self.what}: not reached within {self.timeout_s:.1f} s (last: {last})"
                )
            time.sleep(self.interval_s)

    def holds(self, probe: Callable[[], bool]) -> bool:
        """Poll `probe` for `timeout_s`: True when it stayed true throughout, False at the
        first false answer (the caller says what broke). A probe that raises ends the hold
        with its error: once up, a service whose probe breaks is not "still up"."""
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            time.sleep(self.interval_s)
            if not probe():
                return False
        return True
