"""A verify run's edges, shared by `pytest -m verify` and `rollback-drill verify`: loading a
target file in the order that gives the true first error, the exit status, and the summary.

Order: the file itself (schema: a file error), then whether anything answers at all (after
`rollback-drill down` the target is simply down - that, not a missing CA file, is the news),
then what the file refers to (secrets, CA, baselines: file errors again).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from enum import IntEnum
from pathlib import Path

from rollback_drill.checks import reach
from rollback_drill.checks.result import Check, Outcome, run_checks_concurrently
from rollback_drill.files.targetspec import TargetSpec, load_target
from rollback_drill.process.errors import SpecError, TargetUnreachable
from rollback_drill.process.secrets import redact
from rollback_drill.stack.target import Target, resolve_target

PROBE_TIMEOUT_S = 2.0


class ExitCode(IntEnum):
    """Distinct from pytest's own codes (0-5), so both paths report them alike."""

    VERIFIED = 0
    NOT_RECOVERED = 1  # at least one check failed
    TARGET_FILE_ERROR = 4  # as pytest's usage error: the file is unusable
    NOT_VERIFIED = 6  # nothing failed, but some check could not look
    UNREACHABLE = 7  # nothing of the target accepts a connection: it is down


def endpoints(spec: TargetSpec) -> dict[str, str]:
    """Every address the file names that can be probed without resolving secrets files."""
    urls = {
        "backend": spec.services.backend,
        "ai-chatbot": spec.services.ai_chatbot,
        "frontend": spec.services.frontend,
    }
    if spec.services.frontend_tls:
        urls["frontend (https)"] = spec.services.frontend_tls
    if spec.rpc_url:
        urls["chain"] = spec.rpc_url
    mongodb = spec.mongodb_uri or os.environ.get(spec.mongodb_uri_env or "", "")
    redis = spec.redis_url or os.environ.get(spec.redis_url_env or "", "")
    if mongodb:
        urls["mongodb"] = mongodb
    if redis:
        urls["redis"] = redis
    return urls


def _address(url: str) -> str:
    host, port = reach.host_port(url) or ("?", 0)
    return f"{host}:{port}"


def ensure_reachable(path: Path, spec: TargetSpec) -> None:
    """Raise TargetUnreachable when not one endpoint of the target accepts a connection."""
    urls = endpoints(spec)
    answers = reach.probe_all(urls, min(PROBE_TIMEOUT_S, spec.thresholds.request_timeout_s))
    if answers and all(why is not None for why in answers.values()):
        detail = "; ".join(f"{name} {_address(urls[name])}: {why}" for name, why in answers.items())
        raise TargetUnreachable(
            redact(f"{path}: the target is down - nothing accepts a connection ({detail})")
        )


def load_for_verify(path: Path, spec: TargetSpec | None = None) -> Target:
    """SpecError for an unusable file, TargetUnreachable for a target that is down."""
    spec = spec or load_target(path)
    ensure_reachable(path, spec)
    return resolve_target(path, spec)


class EarlyRun:
    """A verify run started before pytest asks for it: the checks run (the servers work)
    while pytest starts up, collects and sets up, instead of after."""

    def __init__(self, path: Path, target: Target, checks: list[Check]) -> None:
        self.path = path
        self.target = target
        self.checks = checks
        self._outcomes: list[Outcome] = []
        self._thread = threading.Thread(target=self._run, name="verify run", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        self._outcomes = run_checks_concurrently(self.checks, self.target)

    def outcomes(self) -> list[Outcome]:
        self._thread.join()
        return self._outcomes


_early: dict[Path, EarlyRun] = {}
_early_lock = threading.Lock()


def start_early(path: Path) -> EarlyRun | None:
    """Start every check against the target file now, once per file and process; None when
    the file or the target has a problem (the normal path then reports it, once)."""
    from rollback_drill.checks import ALL_CHECKS

    key = path.resolve()
    with _early_lock:
        if key in _early:
            return _early[key]
        try:
            target = load_for_verify(path)
        except (SpecError, TargetUnreachable, ValueError, OSError):
            return None  # the normal path reports it, once
        _early[key] = EarlyRun(path, target, list(ALL_CHECKS))
        return _early[key]


def early_run(path: Path) -> EarlyRun | None:
    with _early_lock:
        return _early.get(path.resolve())


def status(outcomes: Sequence[Outcome]) -> ExitCode:
    if any(o.state == "failed" for o in outcomes):
        return ExitCode.NOT_RECOVERED
    if any(o.state == "not verified" for o in outcomes) or not outcomes:
        return ExitCode.NOT_VERIFIED
    return ExitCode.VERIFIED


_VERDICT = {"passed": "PASS", "failed": "FAIL", "not verified": "NOT VERIFIED"}


def table(outcomes: Sequence[Outcome], width: int = 120) -> list[str]:
    """check | verdict | time | one-line reason - one row per check; a reason gets at least
    130 columns (one cut short hides why)."""
    name_w = max([len(o.check.name) for o in outcomes] + [5])
    room = max(width - name_w - 24, 130)
    rows = [f"{'check':<{name_w}}  {'verdict':<12}  {'time':>6}  reason"]
    for o in outcomes:
        seconds = f"{o.result.duration_s:.2f}s" if o.result is not None else "-"
        reason = " ".join(o.reason.split())
        if len(reason) > room:
            reason = reason[: room - 3] + "..."
        rows.append(f"{o.check.name:<{name_w}}  {_VERDICT[o.state]:<12}  {seconds:>6}  {reason}")
    return rows


def save_performance_baseline(path: Path, outcomes: Sequence[Outcome], origin: str) -> None:
    """Every sample of each sampled flow (from a green run), by operation and route, with the
    machine's foreign load while it was taken: a performance baseline file."""
    from rollback_drill.files import perfbaseline

    flows = {
        o.check.name.removeprefix("flow."): perfbaseline.FlowSamples(
            client_s=o.result.evidence["client_s"],
            server_s=o.result.evidence.get("server_s") or {},
            foreign_share=o.result.evidence.get("foreign_share"),
        )
        for o in outcomes
        if o.check.name.startswith("flow.") and o.result is not None and o.result.evidence
    }
    perfbaseline.build(origin, flows).save(path)


def writes(outcomes: Sequence[Outcome]) -> list[str]:
    """Every write the run made, from the checks' evidence."""
    found = []
    for o in outcomes:
        if o.result is None:
            continue
        for write in o.result.evidence.get("writes", []):
            if "key" in write:  # a key in a store (Redis), not documents in a collection
                found.append(
                    f"{write['store']}: key {write['key']} ({write['note']}) by {o.check.name}"
                )
                continue
            found.append(
                f"{write['collection']}: {write['documents']} document(s) by {o.check.name}"
            )
        probe = o.result.evidence.get("probe")
        if probe:
            found.append(f"  probe conversation {probe['conversationId']} ({probe['message']!r})")
    return found


def verdict(outcomes: Sequence[Outcome], origin: str) -> str:
    code = status(outcomes)
    failed = [o.check.name for o in outcomes if o.state == "failed"]
    unverified = [o.check.name for o in outcomes if o.state == "not verified"]
    if code is ExitCode.NOT_RECOVERED:
        head = f"NOT RECOVERED: {len(failed)} check(s) failed ({', '.join(failed)})"
    elif code is ExitCode.NOT_VERIFIED:
        head = f"NOT VERIFIED: {len(unverified)} check(s) could not look ({', '.join(unverified)})"
    else:
        head = f"VERIFIED: all {len(outcomes)} checks passed"
    if unverified and code is ExitCode.NOT_RECOVERED:
        head += f"; {len(unverified)} not verified ({', '.join(unverified)})"
    return f"{head} - {origin} (exit {int(code)})"


__all__ = [
    "EarlyRun",
    "ExitCode",
    "SpecError",
    "TargetUnreachable",
    "early_run",
    "ensure_reachable",
    "load_for_verify",
    "start_early",
    "status",
    "table",
    "verdict",
    "writes",
]
