"""Live user load for a drill: locust (load/locustfile.py) as a subprocess from the steady
state to verified green, its raw per-request samples read back on the drill's clock.

Locust is never imported here: it patches the whole process with gevent. It runs in its own
process group with the owner mark (rollback_drill.process.proc), so teardown, Ctrl-C and the next
run's sweep treat it like any server the harness started. With `workers` > 0 it runs as a
locust master with that many local worker processes (the same mode a team uses to load a
staging stack from several machines: start more `locust --worker --master-host ...` there).
"""

from __future__ import annotations

import json
import math
import os
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rollback_drill.checks.sampling import percentile
from rollback_drill.process import proc
from rollback_drill.process.errors import LoadError
from rollback_drill.process.places import locustfile as shipped_locustfile
from rollback_drill.process.wait import Wait
from rollback_drill.stack.target import Target
from rollback_drill.steps.timeline import Timeline

START_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class LoadSample:
    """One user request: when it started (drill clock), which journey, how long, the outcome."""

    at_s: float
    journey: str
    latency_s: float
    ok: bool
    status: int | None
    error: str | None


@dataclass(frozen=True)
class LoadStats:
    """What users saw in one window: requests, errors, latency percentiles of the OK ones."""

    requests: int
    errors: int
    p50_s: float | None
    p95_s: float | None
    p99_s: float | None

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None

    @property
    def availability(self) -> float | None:
        return 1 - self.errors / self.requests if self.requests else None

    @classmethod
    def of(cls, samples: Iterable[LoadSample]) -> LoadStats:
        rows = list(samples)
        latencies = [s.latency_s for s in rows if s.ok]

        def latency(q: float) -> float | None:
            # no OK request: latency unknown (None), not the checks' "slowest" (+inf)
            return percentile(latencies, q) if latencies else None

        return cls(
            requests=len(rows),
            errors=sum(1 for s in rows if not s.ok),
            p50_s=latency(50),
            p95_s=latency(95),
            p99_s=latency(99),
        )

    def to_json(self) -> dict[str, Any]:
        def r(value: float | None) -> float | None:
            return None if value is None else round(value, 5)

        return {
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": r(self.error_rate),
            "availability": r(self.availability),
            "p50_s": r(self.p50_s),
            "p95_s": r(self.p95_s),
            "p99_s": r(self.p99_s),
        }


def by_journey(samples: Iterable[LoadSample]) -> dict[str, LoadStats]:
    groups: dict[str, list[LoadSample]] = {}
    for sample in samples:
        groups.setdefault(sample.journey, []).append(sample)
    return {name: LoadStats.of(rows) for name, rows in sorted(groups.items())}


class LoadRun:
    """One locust run against a target, its samples appended live to `samples`."""

    def __init__(
        self,
        target: Target,
        timeline: Timeline,
        workdir: Path,
        *,
        users: int = 6,
        workers: int = 0,
        locustfile: Path | None = None,
    ) -> None:
        self._target = target
        self._timeline = timeline
        self._dir = workdir
        self._users = users
        self._workers = workers
        self._locustfile = locustfile or shipped_locustfile()
        self._procs: list[proc.ManagedProcess] = []
        self._samples: list[LoadSample] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._reader = threading.Thread(target=self._read, name="load-reader", daemon=True)
        self._offset = 0
        self.samples_file = workdir / "load-samples.jsonl"

    # -- life cycle -----------------------------------------------------------------------------
    def start(self) -> LoadRun:
        self._dir.mkdir(parents=True, exist_ok=True)
        self.samples_file.write_text("")
        env = {
            "LOAD_SAMPLES_FILE": str(self.samples_file),
            "LOAD_TEST_EMAIL": self._target.test_email,
            "LOAD_TEST_PASSWORD": self._target.test_password.reveal(),
            "LOAD_TEST_DID": self._target.test_did or "",
            "LOAD_FRONTEND_TLS_URL": self._target.frontend_tls_url or "",
            "LOAD_CA_FILE": str(self._target.ca_file) if self._target.ca_file else "",
            "PYTHONUNBUFFERED": "1",
        }
        locust = [sys.executable, "-m", "locust", "-f", str(self._locustfile)]
        common = ["--headless", "--only-summary", "--loglevel", "WARNING"]
        run = [
            "-u", str(self._users), "-r", str(self._users), "--run-time", "30m",
            "--host", self._target.frontend_url, "--exit-code-on-error", "0",
            "--stop-timeout", "1",
        ]  # fmt: skip
        log = self._dir / "locust.log"
        if self._workers <= 0:
            argv = [*locust, *common, *run]
            self._procs.append(proc.spawn("locust", argv, log, env=env, cwd=self._dir))
        else:
            port = proc.free_port()
            master = [
                *locust, *common, *run, "--master", "--master-bind-host", "127.0.0.1",
                "--master-bind-port", str(port), "--expect-workers", str(self._workers),
            ]  # fmt: skip
            self._procs.append(proc.spawn("locust-master", master, log, env=env, cwd=self._dir))
            for n in range(self._workers):
                worker = [*locust, "--worker", "--master-host", "127.0.0.1",
                          "--master-port", str(port), "--loglevel", "WARNING"]  # fmt: skip
                self._procs.append(
                    proc.spawn(f"locust-worker-{n}", worker, log, env=env, cwd=self._dir)
                )
        self._reader.start()
        return self

    def wait_for_traffic(self, timeout_s: float = START_TIMEOUT_S) -> float:
        """Until the first sample arrives (locust takes ~1.5 s to start)."""

        def flowing() -> bool:
            if any(not p.alive() for p in self._procs):
                raise LoadError(f"locust exited before sending traffic:\n{self.log_tail()}")
            return bool(self.samples())

        try:
            return Wait("first load sample", timeout_s, 0.05, fatal=(LoadError,)).until(flowing)
        except TimeoutError:
            raise LoadError(
                f"no load sample within {timeout_s:.0f} s; locust log:\n{self.log_tail()}"
            ) from None

    def stop(self) -> None:
        for process in reversed(self._procs):
            process.stop(grace=3.0)
        self._stop.set()
        if self._reader.is_alive():
            self._reader.join(timeout=2)
        self._drain()

    def __enter__(self) -> LoadRun:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_tail(self) -> str:
        path = self._dir / "locust.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    # -- samples --------------------------------------------------------------------------------
    def _read(self) -> None:
        while not self._stop.wait(0.05):
            self._drain()

    def _drain(self) -> None:
        try:
            with self.samples_file.open("rb") as handle:
                handle.seek(self._offset)
                chunk = handle.read()
        except OSError:
            return
        end = chunk.rfind(b"\n") + 1  # a line still being written waits for the next read
        if end <= 0:
            return
        self._offset += end
        origin = self._timeline.started_wall
        rows = []
        for line in chunk[:end].splitlines():
            try:
                raw = json.loads(line)
                rows.append(
                    LoadSample(
                        at_s=float(raw["t"]) - origin,
                        journey=str(raw["j"]),
                        latency_s=float(raw["s"]),
                        ok=bool(raw["ok"]),
                        status=raw.get("st"),
                        error=raw.get("e"),
                    )
                )
            except (ValueError, KeyError, TypeError):
                continue
        with self._lock:
            self._samples.extend(rows)

    def samples(self, start_s: float = -math.inf, end_s: float = math.inf) -> list[LoadSample]:
        with self._lock:
            return [s for s in self._samples if start_s <= s.at_s < end_s]

    def stats(self, start_s: float = -math.inf, end_s: float = math.inf) -> LoadStats:
        return LoadStats.of(self.samples(start_s, end_s))


def load_users() -> int:
    """Users per drill: ROLLBACK_DRILL_LOAD_USERS, default 6 (a 2-core machine shares its CPU
    between the load and the stack; more users measure the machine, not the rollback)."""
    raw = os.environ.get("ROLLBACK_DRILL_LOAD_USERS", "6")
    try:
        return max(1, int(raw))
    except ValueError:
        return 6
