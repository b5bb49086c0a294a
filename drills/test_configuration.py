"""Runbook: Configuration Rollback > Environment Variables.

A configuration-only release (1.4.1) raises the chatbot's reply cache past its memory limit:
"Memory usage > 90%: Warning", a performance issue on the matrix's low row, answered by a
configuration rollback: restore `.env.backup`, restart the backend and the ai-chatbot.
"""

from __future__ import annotations

import pytest

from rollback_drill import ChangeConfiguration, Drill, DrillRunner, configuration

pytestmark = [pytest.mark.drill, pytest.mark.configuration]

MEMORY = Drill(
    name="configuration: environment variables",
    release="1.4.1",
    scenario=ChangeConfiguration(),
    procedure=configuration.ENVIRONMENT,
    severity="low",
)


@pytest.mark.parametrize("drill", [MEMORY], ids=["env_memory"])
def test_environment_rollback(drill: Drill, drill_runner: DrillRunner) -> None:
    outcome = drill_runner(drill)
    assert outcome.passed, outcome.failure
    assert any(a.rule == "memory" for a in outcome.alerts)
