"""User flows as people use them, beyond the runbook's literal curl lines and the sampled
flows (flows.py): the e-mail typed the way people type it, and the landing page's own chat
box. Each answers 200 when
broken in the ways releases break them, so only looking at the answer can tell."""

from __future__ import annotations

import re

from rollback_drill.checks.http import evidence, request
from rollback_drill.checks.result import Check, CheckResult
from rollback_drill.stack.target import Target

PAGE_LIMIT = 1_000_000  # the landing page is read whole: the chat box may sit anywhere in it
_ENDPOINT = re.compile(r'data-chat-endpoint="([^"]+)"')


def _login_as_typed(target: Target) -> CheckResult:
    typed = target.test_email[:1].upper() + target.test_email[1:]
    url = target.backend_url + "/api/auth/login"
    resp = request(
        target, "POST", url, json={"email": typed, "password": target.test_password.reveal()}
    )
    body = resp.body if isinstance(resp.body, dict) else {}
    ev = evidence(resp, url)
    ev["body"] = {k: v for k, v in body.items() if k != "token"}
    ok = resp.status == 200 and bool(body.get("token"))
    if ok:  # a login is a session: listed among the run's writes
        ev["writes"] = [{"collection": "sessions", "documents": 1}]
    return CheckResult(
        "functional.login_as_typed",
        ok,
        f"POST /api/auth/login as {typed} (the address with a capital) -> {resp.status} "
        "(expected 200: e-mail addresses are matched without regard to case)",
        ev,
    )


def _frontend_chat_box(target: Target) -> CheckResult:
    page = request(target, "GET", target.frontend_url + "/", max_text=PAGE_LIMIT)
    found = _ENDPOINT.search(page.text)
    if page.status != 200 or found is None:
        return CheckResult(
            "functional.frontend_chat_box",
            False,
            f"GET / -> {page.status}, chat box endpoint "
            f"{'not declared' if found is None else found.group(1)}",
            {"url": target.frontend_url + "/", "status": page.status},
        )
    url = target.frontend_url + found.group(1)
    resp = request(target, "POST", url, json={"message": "Hello"})
    body = resp.body if isinstance(resp.body, dict) else {}
    ok = resp.status == 200 and bool(body.get("reply"))
    ev = evidence(resp, url)
    if resp.status == 200:  # the chatbot keeps every exchange
        ev["writes"] = [{"collection": "chat_messages", "documents": 1}]
    return CheckResult(
        "functional.frontend_chat_box",
        ok,
        f"the page's chat box posts to {found.group(1)} -> {resp.status}",
        ev,
    )


CHECKS = [
    Check(
        "functional.login_as_typed",
        "functional",
        _login_as_typed,
        writes=True,
        doc="POST /api/auth/login with the e-mail as a person types it",
    ),
    Check(
        "functional.frontend_chat_box",
        "functional",
        _frontend_chat_box,
        writes=True,
        doc="the landing page's chat box, through nginx",
    ),
]
