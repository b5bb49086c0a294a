"""Runbook: Service-Specific Rollback (Frontend, Backend, AI Chatbot).

Each release has a minor bug confined to one service; the assessment lands on the matrix's
medium row (partial rollback), and only that service is rolled back. The drill proves the
others were never restarted.
"""

from __future__ import annotations

import pytest

from rollback_drill import DeployRelease, Drill, DrillRunner, service

pytestmark = [pytest.mark.drill, pytest.mark.service]

BACKEND = Drill(
    name="service: backend",
    release="1.8.0",  # /api/did/health names the operator account as the registry
    scenario=DeployRelease(),
    procedure=service.BACKEND,
    severity="medium",
    only_services=("backend",),
)
FRONTEND = Drill(
    name="service: frontend",
    release="1.8.1",  # the page's chat box posts to a route nginx does not have
    scenario=DeployRelease(),
    procedure=service.FRONTEND,
    severity="medium",
    only_services=("frontend",),
)
AI_CHATBOT = Drill(
    name="service: ai-chatbot",
    release="1.8.2",  # every message starts a new conversation
    scenario=DeployRelease(),
    procedure=service.AI_CHATBOT,
    severity="medium",
    only_services=("ai-chatbot",),
)


@pytest.mark.parametrize(
    "drill", [BACKEND, FRONTEND, AI_CHATBOT], ids=["backend", "frontend", "ai_chatbot"]
)
def test_service_rollback(drill: Drill, drill_runner: DrillRunner) -> None:
    outcome = drill_runner(drill)
    assert outcome.passed, outcome.failure
    assert drill.only_services is not None
    others = [s for s, moved in outcome.restarted.items() if moved and s not in drill.only_services]
    assert not others, f"restarted during the rollback: {others}"
