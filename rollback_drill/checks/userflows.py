"""User flows as people use them, beyond the runbook's literal curl lines: the e-mail typed
the way people type it, the DID health answer a client reads, a conversation with the
assistant that keeps its thread, and the landing page's own chat box. Each answers 200 when
broken in the ways releases break them, so only looking at the answer can tell."""

from __future__ import annotations

import re
import uuid

import httpx

from rollback_drill.checks.http import evidence, request
from rollback_drill.checks.result import Check, CheckResult, CheckSkipped
from rollback_drill.target import Target

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
    return CheckResult(
        "functional.login_as_typed",
        ok,
        f"POST /api/auth/login as {typed} (the address with a capital) -> {resp.status} "
        "(expected 200: e-mail addresses are matched without regard to case)",
        ev,
    )


def _did_health_names_the_registry(target: Target) -> CheckResult:
    if not target.registry_address:
        raise CheckSkipped("the target names no registry_address to compare with")
    url = target.backend_url + "/api/did/health"
    resp = request(target, "GET", url)
    body = resp.body if isinstance(resp.body, dict) else {}
    reported = str(body.get("registry", "")).lower()
    expected = target.registry_address.lower()
    chain_ok = target.chain_id is None or body.get("chainId") == target.chain_id
    ok = resp.status == 200 and reported == expected and chain_ok
    return CheckResult(
        "functional.did_health_registry",
        ok,
        f"GET /api/did/health -> {resp.status}, registry {reported or 'missing'} "
        f"(expected {expected}), chainId {body.get('chainId')} (expected {target.chain_id})",
        evidence(resp, url),
    )


def _chat_keeps_the_conversation(target: Target) -> CheckResult:
    url = target.chatbot_url + "/api/chat"
    conversation = f"rollback-drill-{uuid.uuid4().hex[:12]}"
    answers = []
    for message in ("Hello", "I would like to talk about my week"):
        resp = request(
            target, "POST", url, json={"message": message, "conversationId": conversation}
        )
        body = resp.body if isinstance(resp.body, dict) else {}
        answers.append((resp.status, body.get("conversationId"), bool(body.get("reply"))))
    ok = all(status == 200 and kept == conversation and reply for status, kept, reply in answers)
    return CheckResult(
        "functional.chat_conversation",
        ok,
        f"two messages in conversation {conversation}: answered "
        + ", ".join(f"{s} in {c}" for s, c, _ in answers),
        {"url": url, "conversation": conversation, "answers": answers},
    )


def _frontend_chat_box(target: Target) -> CheckResult:
    with httpx.Client(timeout=target.thresholds.request_timeout_s, trust_env=False) as client:
        page = client.get(target.frontend_url + "/")
    found = _ENDPOINT.search(page.text)
    if page.status_code != 200 or found is None:
        return CheckResult(
            "functional.frontend_chat_box",
            False,
            f"GET / -> {page.status_code}, chat box endpoint "
            f"{'not declared' if found is None else found.group(1)}",
            {"url": target.frontend_url + "/", "status": page.status_code},
        )
    url = target.frontend_url + found.group(1)
    resp = request(target, "POST", url, json={"message": "Hello"})
    body = resp.body if isinstance(resp.body, dict) else {}
    ok = resp.status == 200 and bool(body.get("reply"))
    return CheckResult(
        "functional.frontend_chat_box",
        ok,
        f"the page's chat box posts to {found.group(1)} -> {resp.status}",
        evidence(resp, url),
    )


CHECKS = [
    Check(
        "functional.login_as_typed",
        "functional",
        _login_as_typed,
        doc="POST /api/auth/login with the e-mail as a person types it",
    ),
    Check(
        "functional.did_health_registry",
        "functional",
        _did_health_names_the_registry,
        doc="curl -f http://localhost:3000/api/did/health (and read the answer)",
    ),
    Check(
        "functional.chat_conversation",
        "functional",
        _chat_keeps_the_conversation,
        writes=True,
        doc="POST /api/chat twice in one conversation",
    ),
    Check(
        "functional.frontend_chat_box",
        "functional",
        _frontend_chat_box,
        writes=True,
        doc="the landing page's chat box, through nginx",
    ),
]
