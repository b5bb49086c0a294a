"""The runbook's "Verify rollback success": the environment runs what the rollback was meant
to produce - each service's release, the contract version, the registry the backend uses.

Green health says nothing about *which* release answers: a rollback that never restarted a
service, or restarted the wrong image, is healthy and wrong. What is deployed is read where
each service states it: `/health` of backend and ai-chatbot (`release`), the frontend page's
`<meta name="safepsy-release">` (over HTTP and HTTPS), and `/api/did/health`
(`contractVersion`, `registry`).
"""

from __future__ import annotations

from typing import Any

from rollback_drill.checks.functional import RELEASE_META
from rollback_drill.checks.health import get
from rollback_drill.checks.result import Check, CheckResult
from rollback_drill.process.errors import CheckSkipped
from rollback_drill.stack.target import Target


def _deployed(target: Target) -> tuple[dict[str, str | None], dict[str, str]]:
    """What each service says it runs, and why a service said nothing."""
    found: dict[str, str | None] = {}
    why: dict[str, str] = {}
    for service, base in (("backend", target.backend_url), ("ai-chatbot", target.chatbot_url)):
        resp = get(target, "rollback.releases", base + "/health", f"{service} GET /health")
        if isinstance(resp, CheckResult):
            found[service], why[service] = None, resp.summary
            continue
        release = resp.body.get("release") if isinstance(resp.body, dict) else None
        found[service] = str(release) if release is not None else None
        if release is None:
            why[service] = f"/health -> {resp.status} without a release"
    # the frontend's own URL, then its TLS one when it is another (`frontend_routes`)
    pages = [
        ("frontend" if i == 0 else "frontend (https)", base)
        for i, (_, base) in enumerate(target.frontend_routes())
    ]
    for label, base in pages:
        resp = get(target, "rollback.releases", base + "/", f"{label} GET /")
        if isinstance(resp, CheckResult):
            found[label], why[label] = None, resp.summary
            continue
        match = RELEASE_META.search(resp.text)
        found[label] = match.group(1) if match else None
        if match is None:
            why[label] = f"GET / -> {resp.status} without a safepsy-release meta tag"
    return found, why


def _releases(target: Target) -> CheckResult:
    expected = dict(target.expected_releases)
    if not expected:
        raise CheckSkipped("the target names no expected releases (expected.releases)")
    found, why = _deployed(target)
    rows: list[dict[str, Any]] = []
    wrong = []
    silent = False  # a service that said nothing may still be starting: not decided
    for label, release in found.items():
        want = expected.get(label.split(" ")[0])
        rows.append({"service": label, "deployed": release, "expected": want})
        if release is None:
            wrong.append(f"{label}: {why[label]}")
            silent = True
        elif want is not None and release != want:
            wrong.append(f"{label} runs {release}, expected {want}")
    summary = "; ".join(wrong) or "deployed as expected: " + ", ".join(
        f"{r['service']} {r['deployed']}" for r in rows
    )
    return CheckResult(
        "rollback.releases", not wrong, summary, {"services": rows}, decided=not silent
    )


def _contract(target: Target) -> CheckResult:
    if target.expected_contract_version is None or not target.registry_address:
        raise CheckSkipped(
            "the target names no expected.contract_version and registry_address to compare"
        )
    url = target.backend_url + "/api/did/health"
    resp = get(target, "rollback.contract", url, "GET /api/did/health")
    if isinstance(resp, CheckResult):
        return resp
    body = resp.body if isinstance(resp.body, dict) else {}
    version, registry = body.get("contractVersion"), body.get("registry")
    wrong = []
    if resp.status != 200:
        wrong.append(f"/api/did/health -> {resp.status} {body.get('error', '')}".rstrip())
    if version != target.expected_contract_version:
        wrong.append(f"contract version {version}, expected {target.expected_contract_version}")
    if str(registry).lower() != target.registry_address.lower():
        wrong.append(f"backend uses registry {registry}, expected {target.registry_address}")
    evidence = {
        "url": url,
        "status": resp.status,
        "contract_version": version,
        "expected_contract_version": target.expected_contract_version,
        "registry": registry,
        "expected_registry": target.registry_address,
    }
    summary = "; ".join(wrong) or (
        f"backend uses registry {registry} at contract version {version}, as expected"
    )
    # Answered 200 with another contract or registry: what it uses is configured, not warming.
    return CheckResult(
        "rollback.contract", not wrong, summary, evidence, decided=resp.status == 200
    )


CHECKS = [
    Check(
        "rollback.releases",
        "rollback",
        _releases,
        doc="Verify rollback success: every service runs the expected release",
        decides=True,
    ),
    Check(
        "rollback.contract",
        "rollback",
        _contract,
        doc="curl /api/did/health: contractVersion and registry as expected",
        decides=True,
    ),
]
