"""Runbook: Configuration Rollback (Environment Variables, Nginx Configuration, SSL Certificates).

- Environment: a configuration-only release (1.4.1) raises the chatbot's reply cache past its
  memory limit: "Memory usage > 90%: Warning", a performance issue on the matrix's low row,
  answered by restoring `.env.backup` and restarting the backend and the ai-chatbot.
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
from rollback_drill.scenarios import (
    EXPIRED,
    KEY_MISMATCH,
    SYNTAX_ERROR,
    WRONG_NAME,
    WRONG_UPSTREAM,
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
