"""How a rollback that went wrong is told: the step it stopped at (with the runbook command),
why, the state each service was left in, and what to do next.

An operator reading a failed rollback at 3 a.m. needs exactly these, in this order; a bare
traceback gives none of them. The service states are looked at when the step fails, each with
a short bounded probe (a paused or hung server answers nothing: that is a state too, and
finding it out must not hang as well)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx

from rollback_drill.checks.tls import CHECKS as TLS_CHECKS
from rollback_drill.process.errors import VerdictError
from rollback_drill.process.secrets import redact
from rollback_drill.stack.base import Stack
from rollback_drill.stack.target import Target
from rollback_drill.stores import mongo
from rollback_drill.stores import redis as redis_store

PROBE_TIMEOUT_S = 1.0
RERUN = "then run the procedure again from step 1: each of its steps is safe to repeat"


@dataclass(frozen=True)
class ProcedureFailure:
    """A procedure that stopped at a step. `message()` is what the drill reports."""

    procedure: str
    number: int  # the step's number in the procedure, from 1
    of: int  # how many steps the procedure has
    step: str
    runbook: str
    cause: str
    elapsed_s: float  # how long the step ran
    cut_off: bool  # the step was cut off at its time limit (it hung)
    limit_s: float  # the limit it ran under
    budget_spent: bool = False  # that limit was what was left of the rollback's time budget
    services: dict[str, str] = field(default_factory=dict)  # service -> the state it was left in
    next_action: str = ""
    fault: str | None = None  # the fault a drill injected into this step, if any

    def message(self) -> str:
        if self.cut_off and self.limit_s <= 0:
            how = "not started: the rollback's time budget was spent"
        elif self.cut_off and self.budget_spent:
            how = f"cut off after {self.limit_s:g} s, when the rollback's time budget ran out"
        elif self.cut_off:
            how = f"cut off at its {self.limit_s:g} s limit (it did not finish)"
        else:
            how = f"failed after {self.elapsed_s:.1f} s"
        lines = [
            f"{self.procedure}: step {self.number} of {self.of}, {self.step!r} "
            f"(runbook: {self.runbook}), {how}",
            f"cause: {self.cause}",
        ]
        if self.fault:
            lines.append(f"fault injected into this step: {self.fault}")
        lines.append(
            "services left: " + "; ".join(f"{s}: {state}" for s, state in self.services.items())
        )
        lines.append(f"next: {self.next_action}")
        return redact("\n  ".join(lines))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class ProcedureFailed(VerdictError, RuntimeError):
    """A procedure step failed or was cut off; carries the whole story as `failure`."""

    def __init__(self, failure: ProcedureFailure) -> None:
        super().__init__(failure.message())
        self.failure = failure


def _app_state(stack: Stack, target: Target, service: str) -> str:
    release = stack.answers_as(service)
    if release is not None:
        state = f"running, answers healthy as release {release}"
        front = stack.loaded.spec.services[service].kind == "nginx"
        if front and target.frontend_tls_url:
            tls = TLS_CHECKS[0].run(target)
            state += f"; HTTPS {'ok' if tls.ok else 'FAILS'}: {tls.summary}"
        return state
    urls = {"backend": target.backend_url, "ai-chatbot": target.chatbot_url}
    if service not in urls:
        return "running, does not answer healthy"
    # The service's own health check may wait on a dependency: give it the request timeout.
    timeout_s = target.thresholds.request_timeout_s
    try:
        resp = httpx.get(urls[service] + "/health", timeout=timeout_s, trust_env=False)
    except httpx.HTTPError as exc:
        return f"running, /health does not answer within {timeout_s:g} s ({type(exc).__name__})"
    return f"running, /health answers {resp.status_code}: {resp.text[:160].strip()}"


def _state(stack: Stack, target: Target, service: str) -> str:
    try:
        if not stack.is_running(service):
            return "stopped"
        if service == "mongodb":
            mongo.ping(target.mongodb_uri.reveal(), timeout_s=PROBE_TIMEOUT_S)
            return "running, answers ping"
        if service == "redis":
            redis_store.ping(target.redis_url.reveal(), timeout_s=PROBE_TIMEOUT_S)
            return "running, answers ping"
        return _app_state(stack, target, service)
    except Exception as exc:
        return (
            f"running, no answer within {PROBE_TIMEOUT_S:g} s (paused or hung?): "
            f"{type(exc).__name__}"
        )


def service_states(stack: Stack) -> dict[str, str]:
    """Each service's state now, in start order, looked at in parallel (about a second)."""
    try:
        services = stack.all_services()
        target = stack.target()
    except Exception as exc:
        return {"stack": f"cannot be inspected: {type(exc).__name__}: {exc}"}
    with ThreadPoolExecutor(max_workers=len(services) or 1) as pool:
        states = list(pool.map(lambda s: _state(stack, target, s), services))
    return dict(zip(services, states, strict=True))


__all__ = ["RERUN", "ProcedureFailed", "ProcedureFailure", "service_states"]
