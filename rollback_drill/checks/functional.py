"""The runbook's "Functional Testing": log in, DID operations, the AI chatbot - as a user
would, over HTTP. Login is the one write a verify run makes (one session document)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from rollback_drill.checks.http import evidence, request
from rollback_drill.checks.result import Check, CheckResult
from rollback_drill.target import Target


def login(target: Target) -> tuple[CheckResult, dict[str, Any]]:
    url = target.backend_url + "/api/auth/login"
    resp = request(
        target,
        "POST",
        url,
        json={"email": target.test_email, "password": target.test_password.reveal()},
    )
    body = resp.body if isinstance(resp.body, dict) else {}
    ev = evidence(resp, url)
    ev["body"] = {k: v for k, v in body.items() if k != "token"}  # the token is a credential
    ok = resp.status == 200 and isinstance(body.get("token"), str) and bool(body.get("token"))
    return CheckResult(
        "functional.login", ok, f"POST /api/auth/login as {target.test_email} -> {resp.status}", ev
    ), body


def _login(target: Target) -> CheckResult:
    result, _ = login(target)
    return result


def _rejects_bad_password(target: Target) -> CheckResult:
    url = target.backend_url + "/api/auth/login"
    resp = request(
        target, "POST", url, json={"email": target.test_email, "password": "wrong-" + "x" * 12}
    )
    ok = resp.status == 401
    return CheckResult(
        "functional.login_rejects_bad_password",
        ok,
        f"wrong password -> {resp.status} (expected 401)",
        evidence(resp, url),
    )


def _did_resolve(target: Target) -> CheckResult:
    did = target.test_did
    if did is None:
        result, body = login(target)
        if not result.ok:
            return CheckResult(
                "functional.did_resolve",
                False,
                "cannot learn the test DID: " + result.summary,
                result.evidence,
            )
        did = str(body.get("user", {}).get("did", ""))
    url = f"{target.backend_url}/api/did/resolve/{quote(did, safe=':')}"
    resp = request(target, "GET", url)
    body = resp.body if isinstance(resp.body, dict) else {}
    document = body.get("document")
    ok = resp.status == 200 and isinstance(document, dict) and document.get("id") == did
    return CheckResult(
        "functional.did_resolve", ok, f"resolve {did} -> {resp.status}", evidence(resp, url)
    )


def _frontend_proxy(target: Target) -> CheckResult:
    url = target.frontend_url + "/api/did/health"
    resp = request(target, "GET", url)
    ok = resp.status == 200
    return CheckResult(
        "functional.frontend_proxy",
        ok,
        f"GET /api/did/health through nginx -> {resp.status}",
        evidence(resp, url),
    )


def _chat(target: Target) -> CheckResult:
    url = target.chatbot_url + "/api/chat"
    resp = request(target, "POST", url, json={"message": "Hello"})
    body = resp.body if isinstance(resp.body, dict) else {}
    ok = resp.status == 200 and bool(body.get("reply"))
    return CheckResult(
        "functional.chat", ok, f"POST /api/chat -> {resp.status}", evidence(resp, url)
    )


CHECKS = [
    Check(
        "functional.login", "functional", _login, doc="POST /api/auth/login with the test account"
    ),
    Check("functional.login_rejects_bad_password", "functional", _rejects_bad_password),
    Check("functional.did_resolve", "functional", _did_resolve, doc="DID operations"),
    Check("functional.frontend_proxy", "functional", _frontend_proxy),
    Check(
        "functional.chat", "functional", _chat, writes=True, doc="POST /api/chat {message: Hello}"
    ),
]
