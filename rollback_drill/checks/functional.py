"""The runbook's "Functional Testing" - log in, DID operations, the AI chatbot - and the
landing page, each a sampled flow over every route nginx proxies (see `flows`).

Writes: every successful login adds a session, and the chat flow adds its messages under a
marked probe conversation; a read_only target forbids both, and those flows are then "not
verified". Each flow's evidence lists the documents it added.
"""

from __future__ import annotations

import re
import secrets
from typing import Any
from urllib.parse import quote

from rollback_drill.checks.flows import Operation, judge, routes
from rollback_drill.checks.http import Response, evidence, request
from rollback_drill.checks.result import Check, CheckResult
from rollback_drill.process.errors import CheckSkipped
from rollback_drill.stack.target import Target

PROBE_MARK = "[rollback-drill verify probe]"
WRONG_PASSWORD = "wrong-" + "x" * 12
RELEASE_META = re.compile(r'<meta\s+name="safepsy-release"\s+content="([^"]*)"', re.IGNORECASE)


def _body(resp: Response) -> dict[str, Any]:
    return resp.body if isinstance(resp.body, dict) else {}


def _status(expected: int) -> Any:
    def accept(resp: Response) -> str | None:
        return None if resp.status == expected else f"{resp.status} (expected {expected})"

    return accept


def login(target: Target, base: str | None = None) -> tuple[CheckResult, dict[str, Any]]:
    """One login as the test account (adds one session)."""
    url = (base or target.backend_url) + "/api/auth/login"
    resp = request(
        target,
        "POST",
        url,
        json={"email": target.test_email, "password": target.test_password.reveal()},
    )
    body = _body(resp)
    ev = evidence(resp, url)
    ev["body"] = {k: v for k, v in body.items() if k != "token"}  # the token is a credential
    ok = resp.status == 200 and isinstance(body.get("token"), str) and bool(body.get("token"))
    return CheckResult(
        "functional.login", ok, f"POST /api/auth/login as {target.test_email} -> {resp.status}", ev
    ), body


def _landing(target: Target) -> CheckResult:
    def accept(resp: Response) -> str | None:
        if resp.status != 200:
            return f"{resp.status} (expected 200)"
        if RELEASE_META.search(resp.text) is None:
            return "200 but not the SafePsy page (no safepsy-release meta)"
        return None

    ops = [Operation(route, "GET", base + "/", accept) for route, base in target.frontend_routes()]
    return judge("landing", target, ops)


def _login_flow(target: Target) -> CheckResult:
    def accept(resp: Response) -> str | None:
        body = _body(resp)
        if resp.status != 200:
            return f"{resp.status} {body.get('error', '')}".strip()
        if not isinstance(body.get("token"), str) or not body["token"]:
            return "200 without a token"
        if str(body.get("user", {}).get("email", "")).lower() != target.test_email.lower():
            return "200 for another account"
        return None

    credentials = {"email": target.test_email, "password": target.test_password.reveal()}
    ops = [
        Operation(route, "POST", base + "/api/auth/login", accept, credentials, writes="sessions")
        for route, base in routes(target, target.backend_url)
    ]
    return judge("login", target, ops)


def _rejects_bad_password(target: Target) -> CheckResult:
    wrong = {"email": target.test_email, "password": WRONG_PASSWORD}
    rows = []
    bad = []
    for route, base in routes(target, target.backend_url):
        resp = request(target, "POST", base + "/api/auth/login", json=wrong)
        rows.append({"route": route, "status": resp.status, "seconds": round(resp.seconds, 4)})
        if resp.status != 401:
            bad.append(f"{route} -> {resp.status}")
    summary = (
        "wrong password accepted or mishandled: " + ", ".join(bad) + " (expected 401)"
        if bad
        else f"wrong password -> 401 on all {len(rows)} routes"
    )
    return CheckResult("functional.login_rejects_bad_password", not bad, summary, {"routes": rows})


def _did_flow(target: Target) -> CheckResult:
    notes = []
    did = target.test_did
    if did is None and target.read_only:
        raise CheckSkipped(
            "the target names no test_did, and learning it needs a login (a session), which "
            "read_only forbids"
        )
    if did is None:
        result, body = login(target)
        if not result.ok:
            return CheckResult(
                "flow.did", False, "cannot learn the test DID: " + result.summary, result.evidence
            )
        did = str(body.get("user", {}).get("did", ""))
        notes.append("logged in once to learn the test account's DID (one session added)")

    def health(resp: Response) -> str | None:
        body = _body(resp)
        if resp.status != 200 or body.get("status") != "ok":
            return f"{resp.status} {body.get('error', body.get('status', ''))}".strip()
        return None

    def resolved(resp: Response) -> str | None:
        document = _body(resp).get("document")
        if resp.status != 200:
            return f"{resp.status} {_body(resp).get('error', '')}".strip()
        if not isinstance(document, dict) or document.get("id") != did:
            return "200 but not the test account's DID document"
        return None

    ops = []
    for route, base in routes(target, target.backend_url):
        ops += [
            Operation(route, "GET", base + "/api/did/health", health),
            Operation(route, "GET", f"{base}/api/did/resolve/{quote(did, safe=':')}", resolved),
            # registration writes to the chain: only its guard is exercised (no token -> 401)
            Operation(route, "POST", base + "/api/did/register", _status(401), {}),
        ]
    notes.append("POST /api/did/register exercised up to its auth guard (401 without a token)")
    result = judge("did", target, ops, notes)
    if target.test_did is None:
        result.evidence["writes"] = [{"collection": "sessions", "documents": 1}]
    return result


def _chat_flow(target: Target) -> CheckResult:
    conversation = "rollback-drill-probe-" + secrets.token_hex(6)
    payload = {"message": f"{PROBE_MARK} Hello", "conversationId": conversation}

    def accept(resp: Response) -> str | None:
        body = _body(resp)
        if resp.status != 200:
            return f"{resp.status} {body.get('error', '')}".strip()
        if not body.get("reply"):
            return "200 without a reply"
        if body.get("conversationId") != conversation:
            return "200 for another conversation"
        return None

    ops = [
        Operation(route, "POST", base + "/api/chat", accept, payload, writes="chat_messages")
        for route, base in routes(target, target.chatbot_url)
    ]
    result = judge("chat", target, ops, [f"probe conversationId {conversation}"])
    result.evidence["probe"] = {"conversationId": conversation, "message": payload["message"]}
    return result


CHECKS = [
    Check(
        "flow.landing",
        "functional",
        _landing,
        doc="curl -f http://localhost:80 (and https), sampled",
        runbook="time curl -f http://localhost:80",  # its p95, judged against the 2 s threshold
    ),
    Check(
        "flow.login",
        "functional",
        _login_flow,
        writes=True,  # every successful login adds a session
        doc="POST /api/auth/login as the test account, direct and through nginx, sampled",
        runbook='curl -X POST http://localhost:3000/api/auth/login -H "Content-Type: '
        'application/json" -d \'{"email":"test@safepsy.com","password":"testpass"}\'',
    ),
    Check(
        "functional.login_rejects_bad_password",
        "functional",
        _rejects_bad_password,
        doc="POST /api/auth/login with a wrong password -> 401",
    ),
    Check(
        "flow.did",
        "functional",
        _did_flow,
        doc="curl -X GET /api/did/health; resolve the test DID; register's guard - sampled",
        runbook="curl -X GET http://localhost:3000/api/did/health",
    ),
    Check(
        "flow.chat",
        "functional",
        _chat_flow,
        writes=True,
        doc='curl -X POST /api/chat -d \'{"message":"Hello"}\' as a marked probe, sampled',
        runbook='curl -X POST http://localhost:3001/api/chat -H "Content-Type: application/json" '
        '-d \'{"message":"Hello"}\'',
    ),
]
