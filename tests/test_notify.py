"""The communication plan against real receivers on 127.0.0.1 (an HTTP server that records
requests, an aiosmtpd SMTP server): what arrives, in which order, saying what; a channel that
does not deliver is recorded and fails the drill only when required. No stack: a second."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rollback_drill.engine.notify import Brief, Communicator
from rollback_drill.files.drillspec import DecisionRow
from rollback_drill.files.programmespec import CommunicationSpec
from rollback_drill.files.spec import load_stack
from rollback_drill.process.errors import SpecError
from rollback_drill.process.proc import free_port
from rollback_drill.stack import tls
from rollback_drill.steps.timeline import DETECTED, NOTIFIED, Timeline
from tests.helpers import copy_stack_file
from tests.receivers import HttpReceiver, SmtpReceiver, http_receiver, smtp_receiver

ROW = DecisionRow(
    severity="critical", impact="Service Down", rollback_type="emergency", budget_s=300
)
BRIEF = Brief("emergency: service unavailable", ROW, "safepsy", "local", "1.5.0", "1.4.0")
WEBHOOK_TOKEN = "T000/B000/hook-secret-0123456789"
ROUTING_KEY = "R0UTINGKEY0123456789abcdef"


@pytest.fixture
def http() -> Iterator[HttpReceiver]:
    with http_receiver() as receiver:
        yield receiver


@pytest.fixture
def smtp() -> Iterator[SmtpReceiver]:
    with smtp_receiver() as receiver:
        yield receiver


def _channels(http: HttpReceiver, smtp: SmtpReceiver, **extra: Any) -> list[dict[str, Any]]:
    return [
        {"type": "slack", "url_env": "DRILL_TEST_WEBHOOK", **extra},
        {"type": "pagerduty", "routing_key_env": "DRILL_TEST_ROUTING_KEY", "url": http.url("/pd")},
        {"type": "email", "host": "127.0.0.1", "port": smtp.port, "tls": "none",
         "sender": "drill@safepsy.test", "to": ["incidents@safepsy.test", "devops@safepsy.test"]},
        {"type": "statuspage", "url": http.url("/status")},
    ]  # fmt: skip


def _communicator(
    channels: list[dict[str, Any]], brief: Brief = BRIEF, enabled: bool = True
) -> Communicator:
    spec = CommunicationSpec.model_validate({"enabled": enabled, "channels": channels})
    return Communicator(spec, brief, Timeline(), Path("."))


@pytest.fixture(autouse=True)
def secrets(monkeypatch: pytest.MonkeyPatch, http: HttpReceiver) -> None:
    monkeypatch.setenv("DRILL_TEST_WEBHOOK", http.url(f"/services/{WEBHOOK_TOKEN}"))
    monkeypatch.setenv("DRILL_TEST_ROUTING_KEY", ROUTING_KEY)


def _drill_words(text: str) -> None:
    """Every message: DRILL first, then the drill's name, severity and time budget."""
    assert text.lstrip("*").startswith("[DRILL]"), text[:80]
    assert "THIS IS A DRILL" in text
    assert "emergency: service unavailable" in text
    assert "severity critical" in text and "time budget 300 s (5 min)" in text


def test_messages_arrive_in_order_saying_it_is_a_drill(
    http: HttpReceiver, smtp: SmtpReceiver
) -> None:
    comms = _communicator(_channels(http, smtp))
    comms.timeline.mark(DETECTED)
    comms.announce(["service_down backend: 2 probes missed"], "critical (Service Down) ...")
    comms.resolve(None, "time-to-recover 12.30 s within the critical budget of 300 s")

    # HTTP: stakeholders (webhook), status page, support (PagerDuty); then the same again.
    paths = [r.path.split("/")[1] for r in http.requests]
    assert paths == ["services", "status", "pd", "services", "status", "pd"]
    slack = [r.json()["text"] for r in http.on(f"/services/{WEBHOOK_TOKEN}")]
    for text in slack:
        _drill_words(text)
    assert "rollback drill started" in slack[0] and "Detected by: service_down" in slack[0]
    assert "rollback drill resolved" in slack[1] and "Verified green: time-to-recover" in slack[1]

    status = [r.json() for r in http.on("/status")]
    assert [s["status"] for s in status] == ["investigating", "resolved"]
    assert all(s["drill"] is True and s["time_budget_s"] == 300 for s in status)
    _drill_words(status[0]["title"] + "\n" + status[0]["message"])

    trigger, resolve = (r.json() for r in http.on("/pd"))
    assert trigger["event_action"] == "trigger" and resolve["event_action"] == "resolve"
    assert trigger["routing_key"] == resolve["routing_key"] == ROUTING_KEY
    assert trigger["dedup_key"] == resolve["dedup_key"] == comms.record.dedup_key
    assert trigger["dedup_key"].startswith("DRILL-emergency-service-unavailable-")
    assert trigger["payload"]["severity"] == "critical"
    assert trigger["payload"]["custom_details"]["drill"] is True
    _drill_words(
        trigger["payload"]["summary"] + "\n" + trigger["payload"]["custom_details"]["message"]
    )

    # SMTP: the announcement, then the resolution threaded under it, to both recipients.
    assert [e[1] for e in smtp.envelopes] == [["incidents@safepsy.test", "devops@safepsy.test"]] * 2
    first, second = smtp.messages
    for mail in smtp.messages:
        _drill_words(f"{mail['Subject']}\n{mail.get_payload()}")
    assert second["In-Reply-To"] == first["Message-ID"]

    # The record and the timeline: each delivery in order, with its time; the first one marks
    # NOTIFIED, and "notify" (detection to first message) is a phase.
    sent = comms.record.deliveries
    assert [(d.channel, d.kind) for d in sent] == [
        ("slack", "announce"), ("email", "announce"), ("statuspage", "announce"),
        ("pagerduty", "announce"), ("slack", "resolve"), ("email", "resolve"),
        ("statuspage", "resolve"), ("pagerduty", "resolve"),
    ]  # fmt: skip
    assert all(d.ok for d in sent) and comms.record.failure() is None
    assert [d.at_s for d in sent] == sorted(d.at_s for d in sent)
    timeline = comms.timeline
    assert timeline.at(NOTIFIED) >= sent[0].at_s
    assert [e.name for e in timeline.of_kind("step")] == [
        "Notify stakeholders", "Update status page", "Alert support team",
        "Notify stakeholders of resolution", "Update status page", "Resolve the support alert",
    ]  # fmt: skip
    notify = timeline.phases()["notify"]
    assert 0 < notify == round(timeline.at(NOTIFIED) - timeline.at(DETECTED), 4)


def test_a_channel_that_fails_is_recorded_and_fails_the_drill_only_when_required(
    http: HttpReceiver, smtp: SmtpReceiver
) -> None:
    http.answers["/status"] = (500, "status page broken")
    closed = free_port()
    channels = _channels(http, smtp)
    channels[2]["port"] = closed  # nobody listens
    comms = _communicator(channels)
    comms.announce([], "critical")
    comms.resolve(None, "ok")
    failed = {d.channel: d.error for d in comms.record.deliveries if not d.ok}
    assert set(failed) == {"email", "statuspage"}
    assert "HTTP 500" in str(failed["statuspage"])
    assert f"127.0.0.1:{closed}" in str(failed["email"]) and "Refused" in str(failed["email"])
    assert comms.record.failure() is None, "optional channels: shown, never fatal"
    steps = {e.name: e.ok for e in comms.timeline.of_kind("step")}
    assert steps["Update status page"] is False and steps["Alert support team"] is True

    channels[3]["required"] = True
    required = _communicator(channels)
    required.announce([], "critical")
    why = required.record.failure()
    assert why is not None and "statuspage (Update status page): HTTP 500" in why
    assert "email" not in why, "the optional channel's failure does not fail the drill"


def test_missing_secret_and_unanswered_resolve(
    http: HttpReceiver, smtp: SmtpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DRILL_TEST_WEBHOOK")
    comms = _communicator(_channels(http, smtp, required=True))
    comms.announce([], "critical")
    slack = comms.record.deliveries[0]
    assert not slack.ok
    assert slack.error == (
        "environment variable DRILL_TEST_WEBHOOK (communication channel slack, field url_env) "
        "is not set"
    )
    assert comms.record.failure() is not None
    # Nothing was announced on a disabled plan: nothing to resolve, nothing sent.
    quiet = _communicator(_channels(http, smtp), enabled=False)
    before = len(http.requests)
    quiet.announce([], "critical")
    quiet.resolve("DrillFailed: x", None)
    assert len(http.requests) == before and not quiet.record.deliveries


def test_a_failed_drill_still_closes_the_page_and_says_so(
    http: HttpReceiver, smtp: SmtpReceiver
) -> None:
    comms = _communicator(_channels(http, smtp))
    comms.announce([], "critical")
    comms.resolve("DrillFailed: verification failed after rollback:\n  health.backend", None)
    text = http.on(f"/services/{WEBHOOK_TOKEN}")[-1].json()["text"]
    assert "rollback drill ended WITHOUT recovery" in text
    assert "Not recovered: DrillFailed: verification failed after rollback:" in text
    assert http.on("/pd")[-1].json()["event_action"] == "resolve"


def test_severity_filter_pages_only_critical(http: HttpReceiver, smtp: SmtpReceiver) -> None:
    channels = _channels(http, smtp)
    channels[1]["severities"] = ["critical"]  # the runbook: "PagerDuty: Critical alerts"
    row = DecisionRow(
        severity="medium", impact="Minor Issues", rollback_type="partial", budget_s=7200
    )
    medium = Brief("service: backend", row, "safepsy", "local", "1.8.0", "1.4.0")
    comms = _communicator(channels, medium)
    comms.announce([], "medium")
    assert "pagerduty" not in {d.channel for d in comms.record.deliveries}
    assert not http.on("/pd")
    assert "time budget 7200 s (120 min)" in smtp.messages[0]["Subject"]


def test_secrets_stay_out_of_what_is_recorded(http: HttpReceiver, smtp: SmtpReceiver) -> None:
    http.answers["/services"] = (403, f"invalid token {WEBHOOK_TOKEN}")
    comms = _communicator(_channels(http, smtp))
    comms.announce([], "critical")
    text = str(comms.record.to_json()) + str([e.to_json() for e in comms.timeline.events])
    assert "HTTP 403" in text
    assert WEBHOOK_TOKEN not in text and ROUTING_KEY not in text


def test_email_with_starttls_and_login(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    certs = tls.issue(tmp_path / "tls", "127.0.0.1")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certs.cert_file, certs.key_file)
    monkeypatch.setenv("DRILL_TEST_SMTP_PASSWORD", "smtp-pass-0123456789")
    with smtp_receiver(tls=context, password="smtp-pass-0123456789") as smtp:
        channel = {
            "type": "email", "host": "127.0.0.1", "port": smtp.port, "tls": "starttls",
            "ca_file": str(certs.ca_file), "username": "drill", "sender": "drill@safepsy.test",
            "password_env": "DRILL_TEST_SMTP_PASSWORD", "to": ["incidents@safepsy.test"],
        }  # fmt: skip
        comms = _communicator([channel])
        comms.announce([], "critical")
        assert comms.record.deliveries[-1].ok, comms.record.deliveries[-1].error
        assert smtp.logins == ["drill"] and len(smtp.messages) == 1
        # Without the CA the server's certificate is not trusted: not delivered, not silent.
        untrusted = _communicator([{**channel, "ca_file": None}])
        untrusted.announce([], "critical")
        assert "CERTIFICATE_VERIFY_FAILED" in str(untrusted.record.deliveries[-1].error)
        monkeypatch.setenv("DRILL_TEST_SMTP_PASSWORD", "wrong-password-000")
        refused = _communicator([channel])
        refused.announce([], "critical")
        assert "SMTPAuthenticationError" in str(refused.record.deliveries[-1].error)
        assert len(smtp.messages) == 1


def test_stack_file_errors_name_the_field(tmp_path: Path) -> None:
    def bad(spec: dict[str, Any]) -> None:
        spec["communication"] = {
            "enabled": True,
            "channels": [
                {"type": "slack", "url_env": "lower-case"},
                {"type": "email", "host": "h", "sender": "s", "to": ["t"], "username": "u"},
                {"type": "statuspage"},
                {"type": "telegram"},
            ],
        }

    with pytest.raises(SpecError) as caught:
        load_stack(copy_stack_file(tmp_path, "stack.yaml", bad))
    text = str(caught.value)
    assert "communication.channels.0.slack.url_env: String should match pattern" in text
    assert "communication.channels.1.email: `username` needs `password_env`" in text
    assert "communication.channels.2.statuspage: give exactly one of `url` and `url_env`" in text
    assert "communication.channels.3: Input tag 'telegram' found using 'type'" in text
