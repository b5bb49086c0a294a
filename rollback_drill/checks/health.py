"""The runbook's "Health Checks": every service's health endpoint answers 200 and says ok.
One request each: drills poll these to detect a fault, so they stay light."""

from __future__ import annotations

from rollback_drill.checks.http import Response, evidence, request
from rollback_drill.checks.result import Check, CheckResult
from rollback_drill.process.errors import CheckSkipped, HttpFailure
from rollback_drill.stack.target import Target


def get(target: Target, name: str, url: str, label: str) -> Response | CheckResult:
    """The answer, or the failed result that says why there was none."""
    try:
        return request(target, "GET", url)
    except HttpFailure as exc:
        return CheckResult(
            name,
            False,
            f"{label}: {exc.detail}",
            {"url": url, "failure": exc.kind, "seconds": round(exc.seconds, 4)},
        )


def _service_health(name: str, url_of: str, path: str, runbook: str = "") -> Check:
    check_name = f"health.{name}"

    def run(target: Target) -> CheckResult:
        url = getattr(target, url_of) + path
        resp = get(target, check_name, url, f"GET {path}")
        if isinstance(resp, CheckResult):
            return resp
        body = resp.body if isinstance(resp.body, dict) else {}
        ok = resp.status == 200 and body.get("status") == "ok"
        reason = (
            ""
            if ok
            else f": {body.get('status', resp.text[:120])} {body.get('checks', '')}".rstrip()
        )
        return CheckResult(
            check_name, ok, f"GET {path} -> {resp.status}{reason}", evidence(resp, url)
        )

    return Check(check_name, "health", run, doc=f"curl -f {path} on {name}", runbook=runbook)


def _frontend(name: str, url_of: str, runbook: str = "") -> Check:
    check_name = f"health.{name}"

    def run(target: Target) -> CheckResult:
        base = getattr(target, url_of)
        if base is None:
            raise CheckSkipped(f"target has no {url_of}")
        resp = get(target, check_name, base + "/", "GET /")
        if isinstance(resp, CheckResult):
            return resp
        ok = resp.status == 200 and "<html" in resp.text.lower()
        summary = f"GET / -> {resp.status}"
        moved_to = resp.headers.get("location", "")
        if resp.status in (301, 302, 307, 308) and moved_to.startswith("https://"):
            # not the page on this route; most often a frontend served over HTTPS alone
            summary += (
                f" to {moved_to}: this URL redirects to HTTPS; if users are meant to land "
                f"there, name the https URL as the target's frontend"
            )
        return CheckResult(check_name, ok, summary, evidence(resp, base + "/"))

    return Check(check_name, "health", run, doc="curl -f http://localhost:80", runbook=runbook)


CHECKS = [
    _service_health(
        "backend",
        "backend_url",
        "/health",
        'curl -f http://localhost:3000/health || echo "Backend failed"',
    ),
    _service_health(
        "ai-chatbot",
        "chatbot_url",
        "/health",
        'curl -f http://localhost:3001/health || echo "AI Chatbot failed"',
    ),
    _service_health("did", "backend_url", "/api/did/health"),
    _frontend("frontend", "frontend_url", 'curl -f http://localhost:80 || echo "Frontend failed"'),
    _frontend("frontend-tls", "frontend_tls_url"),
]
