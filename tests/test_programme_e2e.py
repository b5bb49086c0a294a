"""The drill programme as a user meets it, on real drills (local backend, two at once, each in
its own reports directory), with real receivers on 127.0.0.1 for the communication plan:

- `rollback-drill run --cadence quarterly` with a webhook, an SMTP server and a status page
  that answers 500 (not required): the messages arrive in order saying DRILL, the report
  shows each with its time, the failed status page is shown but does not fail the drill; the
  record carries the cadence, the data volume, the messages and the runbook coverage;
  `history` says when quarterly last passed; the incident document is written beside it.
- the same drill with a required webhook that answers 503: the rollback works, the drill fails
  naming the channel.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from rollback_drill.evidence import record
from rollback_drill.files.drillrecord import RunRecord
from tests.helpers import copy_stack_file
from tests.paths import PROJECT_ROOT
from tests.receivers import HttpReceiver, SmtpReceiver, http_receiver, smtp_receiver

pytestmark = pytest.mark.slow  # `rollback-drill run --cadence` end to end: not in the fast tier

CLI_TIMEOUT_S = 300


@dataclass(frozen=True)
class Runs:
    ok: subprocess.CompletedProcess[str]
    ok_dir: Path
    required: subprocess.CompletedProcess[str]
    required_dir: Path
    http: HttpReceiver
    smtp: SmtpReceiver


def _stack(directory: Path, name: str, channels: list[dict[str, Any]]) -> Path:
    def enable(spec: dict[str, Any]) -> None:
        spec["communication"] = {"enabled": True, "channels": channels}

    return copy_stack_file(directory, name, enable)


def _run(reports: Path, stack: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "rollback_drill.cli", "run", "--backend", "local",
            "--no-html", "--reports-dir", str(reports), "--stack", str(stack), *extra,
            "--", "-k", "service_down", "-p", "no:cacheprovider"]  # fmt: skip


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    base = tmp_path_factory.mktemp("programme")
    with http_receiver() as http, smtp_receiver() as smtp:
        http.answers["/status"] = (500, "status page down")
        http.answers["/required-hook"] = (503, "hook down")
        email = {"type": "email", "host": "127.0.0.1", "port": smtp.port, "tls": "none",
                 "sender": "drill@safepsy.test", "to": ["incidents@safepsy.test"]}  # fmt: skip
        ok_stack = _stack(
            base,
            "stack-comms.yaml",
            [
                {"type": "slack", "url_env": "DRILL_E2E_WEBHOOK"},
                email,
                {"type": "statuspage", "url": http.url("/status")},
            ],
        )
        required_stack = _stack(
            base,
            "stack-required.yaml",
            [{"type": "slack", "url_env": "DRILL_E2E_REQUIRED_HOOK", "required": True}],
        )
        env = {
            **os.environ,
            "DRILL_E2E_WEBHOOK": http.url("/hook/T1/B2/webhook-secret-abcdef"),
            "DRILL_E2E_REQUIRED_HOOK": http.url("/required-hook"),
        }
        argvs = [
            _run(base / "ok", ok_stack, "--cadence", "quarterly"),
            _run(base / "required", required_stack),
        ]
        children = [
            subprocess.Popen(argv, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, start_new_session=True)
            for argv in argvs
        ]  # fmt: skip
        done = []
        for child, argv in zip(children, argvs, strict=True):
            try:
                out, err = child.communicate(timeout=CLI_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGTERM)
                out, err = child.communicate(timeout=30)
            done.append(subprocess.CompletedProcess(argv, child.returncode, out, err))
        yield Runs(done[0], base / "ok", done[1], base / "required", http, smtp)


def _explain(done: subprocess.CompletedProcess[str]) -> str:
    return f"exit {done.returncode}\n{done.stdout[-5000:]}\n{done.stderr[-3000:]}"


def _record(reports: Path) -> RunRecord:
    """The run's one record, read back through its model (which checks every field)."""
    (found,), problems = record.load_all(reports / "records")
    assert not problems
    return found[1]


def test_quarterly_run_delivers_drill_messages_in_order(runs: Runs) -> None:
    assert runs.ok.returncode == 0, _explain(runs.ok)
    assert "cadence quarterly: every 92 days" in runs.ok.stdout
    data = _record(runs.ok_dir)
    assert data.cadence == "quarterly"
    (drill,) = data.drills
    assert drill.outcome == "passed"
    assert drill.communication is not None
    messages = drill.communication.messages
    assert [(m.channel, m.kind, m.ok) for m in messages] == [
        ("slack", "announce", True), ("email", "announce", True),
        ("statuspage", "announce", False), ("slack", "resolve", True),
        ("email", "resolve", True), ("statuspage", "resolve", False),
    ]  # fmt: skip
    assert drill.communication.failed == ["statuspage", "statuspage"]
    assert drill.communication.failed_required == []
    # What arrived, in order, saying DRILL with the drill's name, severity and budget.
    hooks = [r for r in runs.http.requests if r.path.startswith("/hook/")]
    texts = [r.json()["text"] for r in hooks]
    assert len(texts) == 2 and "drill started" in texts[0] and "drill resolved" in texts[1]
    for text in texts + [str(m["Subject"]) for m in runs.smtp.messages]:
        assert "[DRILL] emergency: service unavailable" in text
        assert "severity critical" in text and "time budget 300 s (5 min)" in text
    assert len(runs.smtp.messages) == 2
    # The order of arrival matches the timeline; the announcement came after detection.
    phases = drill.phases
    assert 0 < phases["notify"] < phases["decide"]
    assert messages[0].at_s < messages[3].at_s
    assert hooks[0].at < runs.smtp.envelopes[0][2] < hooks[1].at


def test_the_report_shows_each_message_with_its_time(runs: Runs) -> None:
    assert runs.ok.returncode == 0, _explain(runs.ok)
    results = list((runs.ok_dir / "allure-results").glob("*-result.json"))
    pages = [json.loads(p.read_text()) for p in results]
    (page,) = [p for p in pages if p["name"].startswith("test_emergency")]
    description = page["descriptionHtml"]
    rows = re.findall(r"<tr><td>(\d+\.\d\d) s<br><small>(\d\d:\d\d:\d\d\.\d{3}) UTC", description)
    assert len(rows) == 6
    assert "delivered (HTTP 202)" in description and "NOT DELIVERED</b>: HTTP 500" in description
    assert "accepted by 127.0.0.1" in description
    assert re.search(r"Runbook coverage.*\d+ of \d+ runbook commands", description)
    assert "200 seeded users" in description
    steps = [s["name"] for s in page["steps"]]
    assert "Communicate: notify stakeholders, status page, support (DRILL)" in steps
    assert "Communicate: notify resolution (DRILL)" in steps


def test_record_carries_volume_and_coverage_and_history_the_calendar(runs: Runs) -> None:
    assert runs.ok.returncode == 0, _explain(runs.ok)
    data = _record(runs.ok_dir)
    (drill,) = data.drills
    volume = drill.data_volume
    assert volume is not None
    assert volume.seed_users == 200
    assert volume.documents["users"] >= 200 and "sessions" in volume.documents
    coverage = data.runbook_coverage
    assert coverage is not None
    assert coverage.runbook.path == "fixtures/safepsy/ROLLBACK_RUNBOOK.md"
    assert 0 < coverage.covered < coverage.total and coverage.drifted == []
    assert "runbook coverage:" in runs.ok.stdout
    done = subprocess.run(
        [sys.executable, "-m", "rollback_drill.cli", "history", "--reports-dir",
         str(runs.ok_dir), "--check-overdue"],
        capture_output=True, text=True, timeout=60, cwd=PROJECT_ROOT,
    )  # fmt: skip
    assert done.returncode == 1, "monthly and annual never ran: overdue"
    assert re.search(r"quarterly +every +92 days: last passed \d{4}-\d\d-\d\d", done.stdout)
    assert "OVERDUE: monthly, annual" in done.stdout
    assert "emergency: service unavailable [local, 200 users] 1.5.0 -> 1.4.0" in done.stdout


def test_incident_document_beside_the_report(runs: Runs) -> None:
    assert runs.ok.returncode == 0, _explain(runs.ok)
    (doc,) = (runs.ok_dir / "incidents").glob("*/01-emergency-service-unavailable-local.md")
    assert "incident documents:" in runs.ok.stdout
    text = doc.read_text()
    assert "| Outcome | **PASSED** |" in text
    assert "message to slack (Notify stakeholders)" in text
    assert "**detected**" in text and "**verified**" in text
    assert re.search(r"\| backend \| \d+ \|", text)
    assert "- [x] Confirm data integrity - proved: integrity against the baseline" in text
    assert "- [x] Notify stakeholders of resolution - proved: resolution delivered: slack" in text
    assert "- [ ] Update status page" in text, "the status page never took the resolution"
    assert "webhook-secret-abcdef" not in text


def test_a_required_channel_that_fails_fails_the_drill(runs: Runs) -> None:
    assert runs.required.returncode == 1, _explain(runs.required)
    data = _record(runs.required_dir)
    assert data.cadence is None
    (drill,) = data.drills
    assert drill.outcome == "failed"
    assert str(drill.failure).startswith(
        "DrillFailed: required communication channel(s) did not deliver: "
        "slack (Notify stakeholders): HTTP 503: hook down"
    )
    assert drill.time_to_recover_s is not None, "the rollback itself went on and recovered"
    assert drill.communication is not None
    assert drill.communication.failed_required == ["slack", "slack"]


def test_no_webhook_secret_in_any_output(runs: Runs) -> None:
    for reports in (runs.ok_dir, runs.required_dir):
        for path in reports.rglob("*"):
            if path.is_file() and path.suffix in (".json", ".md", ".txt", ".log"):
                assert b"webhook-secret-abcdef" not in path.read_bytes(), path
