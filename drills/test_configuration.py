"""Runbook: Configuration Rollback (Environment Variables, Nginx Configuration, SSL Certificates).

- Environment: a configuration-only release (1.4.1) raises the chatbot's reply cache past its
  memory limit: "Memory usage > 90%: Warning", a performance issue on the matrix's low row,
  answered by restoring `.env.backup` and restarting the backend and the ai-chatbot.
  An operator's `.env` edit, then the service restarted, breaks it through the app's own
  configuration handling: the backend's MONGODB_URI on a port nothing listens on (its /health
  503, logins fail on the database), or MONGODB_URI deleted from the ai-chatbot's .env (it
  refuses to start). Service down: critical; the same procedure is the whole revert.
- Nginx: an operator edits the live nginx.conf and restarts nginx. A syntax error keeps nginx
  from coming back (service down); a valid edit sends the API to the chatbot's upstream (login
  and DIDs fail: error rate over 5 %). Both are critical; the rollback restores nginx.conf.backup,
  gates it with `nginx -t` and reloads - in place while users keep using the site, and the
  reload must cost them no request.
- SSL: an operator installs an expired certificate, one for another name, or a key that does
  not belong to the certificate, and restarts nginx ("SSL certificate failures": critical).
  The rollback restores the certificate and key, restarts nginx and verifies the handshake.
"""

from __future__ import annotations

import pytest

from rollback_drill import (
    ChangeConfiguration,
    Drill,
    DrillRunner,
    EditNginxConfig,
    ReplaceCertificate,
    configuration,
)
from rollback_drill.failures.operatoredits import (
    EXPIRED,
    KEY_MISMATCH,
    MISSING_VARIABLE,
    SYNTAX_ERROR,
    WRONG_NAME,
    WRONG_UPSTREAM,
    WRONG_URI,
    EditEnvironment,
    EnvEdit,
)

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


def _env(edit: EnvEdit) -> Drill:
    return Drill(
        name=f"configuration: environment variables ({edit.name.replace('_', ' ')})",
        release="1.4.0",  # the release running; the operator's edit is the change
        scenario=EditEnvironment(edit),
        procedure=configuration.ENVIRONMENT,
        severity="critical",
    )


ENV_EDITS = [_env(WRONG_URI), _env(MISSING_VARIABLE)]


@pytest.mark.parametrize("drill", ENV_EDITS, ids=["wrong_uri", "missing_variable"])
def test_environment_edit_rollback(drill: Drill, drill_runner: DrillRunner) -> None:
    outcome = drill_runner(drill)
    assert outcome.passed, outcome.failure
    assert isinstance(drill.scenario, EditEnvironment)
    edit = drill.scenario.edit
    fault = next(e for e in outcome.timeline.of_kind("phase") if e.name.startswith("Fault"))
    down = {a.subject for a in outcome.alerts if a.rule == "service_down"}
    assert edit.service in down, outcome.alerts
    if edit is MISSING_VARIABLE:  # the app refuses to start, naming the variable
        assert fault.detail["came_back"] is False, fault.detail
        assert "MONGODB_URI" in fault.detail["why"] and "unset" in fault.detail["why"]
    else:  # it runs, and fails on the database it cannot reach
        assert fault.detail["came_back"] is True, fault.detail
        assert any(a.rule == "database_errors" for a in outcome.alerts), outcome.alerts
    steps = [e.name for e in outcome.timeline.of_kind("step")]
    assert steps[:3] == ["1. Restore previous environment", "2. Restart services", "3. Verify"]


def _nginx(edit: str) -> Drill:
    chosen = {"syntax_error": SYNTAX_ERROR, "wrong_upstream": WRONG_UPSTREAM}[edit]
    return Drill(
        name=f"configuration: nginx ({chosen.name.replace('_', ' ')})",
        release="1.4.0",  # the release running; the operator's edit is the change
        scenario=EditNginxConfig(chosen),
        procedure=configuration.NGINX,
        severity="critical",
        # A reload in place keeps serving: no request may go unanswered or get a 5xx.
        gapless_steps=("Reload nginx", "Verify") if chosen is WRONG_UPSTREAM else (),
    )


SYNTAX = _nginx("syntax_error")
UPSTREAM = _nginx("wrong_upstream")


@pytest.mark.parametrize("drill", [SYNTAX, UPSTREAM], ids=["syntax_error", "wrong_upstream"])
def test_nginx_rollback(drill: Drill, drill_runner: DrillRunner) -> None:
    outcome = drill_runner(drill)
    assert outcome.passed, outcome.failure
    steps = {e.name: e for e in outcome.timeline.of_kind("step")}
    reload = steps["3. Reload nginx"].detail["how"]
    if drill is SYNTAX:
        assert any(a.rule == "service_down" for a in outcome.alerts)
        assert reload.startswith("started"), reload
    else:
        assert any(a.rule == "error_rate" for a in outcome.alerts)
        assert reload.startswith("reloaded in place"), reload
        seen = outcome.load_of_steps(drill.gapless_steps)
        assert seen is not None and seen.stats.requests > 0, seen
        assert seen.unavailable == 0, seen


def _ssl(change: str) -> Drill:
    chosen = {"expired": EXPIRED, "wrong_name": WRONG_NAME, "key_mismatch": KEY_MISMATCH}[change]
    return Drill(
        name=f"configuration: SSL ({chosen.name.replace('_', ' ')})",
        release="1.4.0",
        scenario=ReplaceCertificate(chosen),
        procedure=configuration.SSL,
        severity="critical",
    )


SSL_DRILLS = [_ssl("expired"), _ssl("wrong_name"), _ssl("key_mismatch")]


@pytest.mark.parametrize("drill", SSL_DRILLS, ids=["expired", "wrong_name", "key_mismatch"])
def test_ssl_rollback(drill: Drill, drill_runner: DrillRunner) -> None:
    outcome = drill_runner(drill)
    assert outcome.passed, outcome.failure
    tls = next(o for o in outcome.verification if o.check.name == "tls.certificate")
    assert tls.result is not None and tls.result.ok
    evidence = tls.result.evidence
    assert evidence["chain_verified"] and evidence["name_matches"] and evidence["key_matches"]
    assert not evidence["expired"]
