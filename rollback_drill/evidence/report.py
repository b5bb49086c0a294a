"""Allure as a reader of the drill's timeline: `AllureListener` turns phases, steps, checks,
markers and artifacts into Allure steps and attachments as they happen; `label_drill` and
`finish_drill` put the labels, the chart and the story on the test's page. Nothing in the
engine imports this module; the pytest plugin wires it. Every text passes through `redact`:
no secret reaches a report (allure's API is a no-op without --alluredir)."""

from __future__ import annotations

import base64
import html
import json
import threading
import warnings
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import allure

from rollback_drill.engine.outcome import Drill, DrillOutcome
from rollback_drill.evidence import chart, coverage, environment, record
from rollback_drill.evidence.report_evidence import evidence_rows
from rollback_drill.files.drillspec import DecisionRow
from rollback_drill.files.spec import LoadedStack
from rollback_drill.process.errors import EvidenceError
from rollback_drill.process.secrets import redact
from rollback_drill.steps.timeline import Artifact, Event


@contextmanager
def step(title: str) -> Iterator[None]:
    with allure.step(redact(title)):
        yield


def attach_text(name: str, text: str, kind: str = "text") -> None:
    types = {"text": allure.attachment_type.TEXT, "json": allure.attachment_type.JSON}
    allure.attach(redact(text), name=name, attachment_type=types[kind])


def attach_json(name: str, data: Any) -> None:
    attach_text(name, json.dumps(data, indent=2, default=str), kind="json")


def attach_png(name: str, path: Path) -> None:
    allure.attach.file(str(path), name=name, attachment_type=allure.attachment_type.PNG)


def attach_artifact(artifact: Artifact) -> None:
    """A step's artifact as an attachment; one that holds secrets is named, never attached."""
    if artifact.sensitive:
        where = artifact.path.name if artifact.path else "the drill's artifacts"
        attach_text(
            f"{artifact.name} (not attached)",
            f"{artifact.name} holds secrets (keys, passwords): kept owner-only in {where}.",
        )
    elif artifact.path is not None and artifact.media == "png":
        attach_png(artifact.name, artifact.path)
    elif artifact.path is not None:
        kind = "json" if artifact.media == "json" else "text"
        attach_text(artifact.name, artifact.path.read_text(errors="replace"), kind)
    elif artifact.media == "json":
        attach_json(artifact.name, artifact.data)
    else:
        attach_text(artifact.name, str(artifact.data))


class _SpanFailed(EvidenceError):
    """Stands for a span's error when its Allure step closes (Allure marks the step failed)."""


class AllureListener:
    """The drill's timeline as Allure steps: each phase and step a step, each check a step
    with its evidence, each artifact an attachment, markers as zero-length steps. Allure's
    step API is bound to the test's thread: events from monitoring threads (alerts) are
    kept and attached as one table when the drill ends (`finish_drill`)."""

    def __init__(self) -> None:
        self._thread = threading.current_thread()
        self._open: dict[int, AbstractContextManager[Any]] = {}
        self.alerts: list[Event] = []

    def started(self, span: Event) -> None:
        if threading.current_thread() is not self._thread:
            return
        ctx = allure.step(redact(span.name))
        ctx.__enter__()
        self._open[span.span] = ctx

    def emitted(self, event: Event) -> None:
        if event.kind == "alert":
            self.alerts.append(event)
            return
        if threading.current_thread() is not self._thread:
            return
        if event.kind in ("phase", "step"):
            ctx = self._open.pop(event.span, None)
            if ctx is None:
                return
            if event.detail:
                attach_json("details", event.detail)
            if event.ok:
                ctx.__exit__(None, None, None)
            else:
                error = _SpanFailed(redact(event.error or "failed"))
                ctx.__exit__(_SpanFailed, error, None)
        elif event.kind == "check":
            state = "PASS" if event.ok else "FAIL"
            with allure.step(redact(f"{event.name}: {state} - {event.detail.get('summary', '')}")):
                attach_json("evidence", event.detail.get("evidence", {}))
        elif event.kind == "artifact" and event.artifact is not None:
            attach_artifact(event.artifact)
        elif event.kind == "marker":
            with allure.step(f"⏱ {event.name.replace('_', ' ')} at {event.at_s:.2f} s"):
                if event.detail:
                    attach_json("details", event.detail)


def label_drill(drill: Drill, budget: DecisionRow, backend: str) -> None:
    """Labels a person filters by: runbook section, decision-matrix severity, backend."""
    section, procedure = redact(drill.runbook_section), redact(drill.procedure.name)
    allure.dynamic.label("runbook_section", section)
    allure.dynamic.label("procedure", procedure)
    allure.dynamic.label("stack_backend", redact(backend))
    allure.dynamic.tag(f"severity:{drill.severity}")
    allure.dynamic.severity(
        {
            "critical": allure.severity_level.BLOCKER,
            "high": allure.severity_level.CRITICAL,
            "medium": allure.severity_level.NORMAL,
            "low": allure.severity_level.MINOR,
        }[drill.severity]
    )
    allure.dynamic.parameter("budget_s", budget.budget_s)
    allure.dynamic.description(
        f"Runbook section: **{section}**\n\nMatrix row: severity **{drill.severity}** "
        f"({budget.impact}), {budget.rollback_type} rollback, time budget "
        f"{budget.budget_s:.0f} s. Stack backend: {backend}."
    )


def label_verification(category: str, runbook_command: str) -> None:
    allure.dynamic.label("verification", redact(category))
    if runbook_command:
        allure.dynamic.description(redact(f"Runbook: `{runbook_command}`"))


# -- the end of a drill: environment, timeline chart, a description that tells the story ------


def attach_environment(outcome: DrillOutcome) -> dict[str, Any]:
    """Releases as parameters (part of the history id: a different release pair is a different
    trend; the plugin parametrizes the backend); machine and tool versions as excluded
    parameters (not part of the history id) and an attachment."""
    env = environment.describe(
        backend=outcome.backend,
        bad_release=outcome.bad_release,
        good_release=outcome.good_release,
    )
    allure.dynamic.parameter("from_release", outcome.bad_release)
    allure.dynamic.parameter("to_release", outcome.good_release)
    machine = env["machine"]
    allure.dynamic.parameter(
        "machine",
        f"{machine['hostname']}: {machine['cpu_count']} CPU, {machine['memory_gib']} GiB, "
        f"kernel {machine['kernel']}",
        excluded=True,
    )
    tools = ", ".join(f"{k} {v or 'missing'}" for k, v in env["tools"].items())
    allure.dynamic.parameter("tools", tools, excluded=True)
    attach_json("environment", env)
    return env


def attach_timeline_chart(outcome: DrillOutcome) -> Path | None:
    """Render the availability/response-time chart into the drill's artifacts and attach it.
    A chart that cannot be drawn must not turn a drill red: it says why instead."""
    try:
        path = chart.render_outcome(outcome, outcome.artifacts / "timeline.png")
    except Exception as exc:
        message = f"timeline chart not rendered: {type(exc).__name__}: {exc}"
        warnings.warn(message, stacklevel=2)
        attach_text("timeline chart (missing)", message)
        return None
    attach_png("timeline chart", path)
    return path


def _seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} s"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f} %"


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{1000 * value:.1f}"


def _users_table(outcome: DrillOutcome) -> str:
    e = html.escape
    rows = "".join(
        f"<tr><td>{e(phase)}</td><td>{s.requests}</td><td>{_pct(s.error_rate)}</td>"
        f"<td>{_ms(s.p50_s)}</td><td>{_ms(s.p95_s)}</td><td>{_ms(s.p99_s)}</td>"
        f"<td>{_pct(s.availability)}</td></tr>"
        for phase, s in outcome.users_saw().items()
    )
    if not rows:
        return "no user load in this drill"
    head = (
        "<tr><th>phase</th><th>requests</th><th>errors</th><th>p50 ms</th><th>p95 ms</th>"
        "<th>p99 ms</th><th>availability</th></tr>"
    )
    return f"<table style='border-collapse:collapse'>{head}{rows}</table>"


def _communication_html(outcome: DrillOutcome) -> str:
    """Each message the drill sent: when (drill clock and UTC), where, what, and the answer."""
    e = html.escape
    comms = outcome.communication
    if comms is None or not comms.enabled:
        return "off (the stack file's communication.enabled is false)"
    if not comms.deliveries:
        return f"no channel for a {e(outcome.severity)} drill"
    rows = "".join(
        f"<tr><td>{d.at_s:.2f} s<br><small>{utc(d.at_wall)}</small></td><td>{e(d.channel)}"
        f"</td><td>{e(d.step)}</td><td>{e(d.subject)}</td><td>"
        + (f"delivered ({e(d.answer)})" if d.ok else f"<b>NOT DELIVERED</b>: {e(d.error or '')}")
        + (" <b>(required)</b>" if d.required else "")
        + "</td></tr>"
        for d in comms.deliveries
    )
    head = "<tr><th>time</th><th>channel</th><th>step</th><th>message</th><th>result</th></tr>"
    return f"<table style='border-collapse:collapse'>{head}{rows}</table>"


def _figures_html(figures: dict[str, Any]) -> str:
    """What the procedure measured (pause time, gas, DIDs carried and lost...), one line each."""
    if not figures:
        return "none measured by this procedure"
    e = html.escape
    rows = "".join(
        f"<tr><td style='padding-right:12px'>{e(name.replace('_', ' '))}</td>"
        f"<td>{e(value if isinstance(value, str) else json.dumps(value))}</td></tr>"
        for name, value in figures.items()
    )
    return f"<table style='border-collapse:collapse'>{rows}</table>"


def utc(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%H:%M:%S.%f")[:-3] + " UTC"


def coverage_text(outcome: DrillOutcome, stack: LoadedStack) -> str:
    """The runbook's coverage by every drill step, and by this drill's procedure's section."""
    try:
        found = coverage.of_runbook(stack.resolve(stack.spec.runbook))
    except Exception as exc:  # the figure is information: it must not turn a drill red
        return f"not measured: {type(exc).__name__}: {exc}"
    mine, total = found.of_section(outcome.procedure.runbook_section)
    drift = f"{len(found.drifted)} drifted step command(s)" if found.drifted else "no drift"
    return f"{found.figure()}; this section {mine} of {total}; {drift}"


def _description_html(
    outcome: DrillOutcome, runbook: dict[str, str], env: dict[str, Any], covered: str
) -> str:
    e = html.escape
    budget = outcome.budget
    if outcome.verdict is not None:
        share = 100 * outcome.verdict.time_to_recover_s / budget.budget_s
        state = "PASS" if outcome.passed else "OVER BUDGET"
        verdict = (
            f"<b>{state}</b>: time-to-recover <b>{outcome.verdict.time_to_recover_s:.2f} s</b>"
            f" of a {budget.budget_s:.0f} s budget ({share:.1f} %)"
        )
        if outcome.failure:
            verdict += f"; {e(outcome.failure.splitlines()[0])}"
    else:
        verdict = f"<b>FAIL</b>: did not recover. {e((outcome.failure or '').splitlines()[0])}"
    phases = " &middot; ".join(f"{e(k)} {v:.2f} s" for k, v in outcome.timeline.phases().items())
    availability = outcome.availability().get("overall")
    tools = ", ".join(f"{e(k)} {e(v or 'missing')}" for k, v in env["tools"].items())
    m = env["machine"]
    decision = outcome.decision
    defect = outcome.drill.scenario.description
    rows = [
        ("Runbook section", f"<b>{e(outcome.procedure.runbook_section)}</b>"),
        ("Runbook version", f"{e(runbook['path'])} sha256 <code>{runbook['sha256'][:16]}</code>"),
        (
            "Matrix row",
            f"severity <b>{e(budget.severity)}</b> ({e(budget.impact)}): "
            f"{e(budget.rollback_type)} rollback, time budget <b>{budget.budget_s:.0f} s</b>",
        ),
        ("What went wrong", e(defect)),
        ("Detected by", e("; ".join(outcome.detected_by) or "not detected")),
        ("Decision", e(decision.explain()) if decision else "no decision"),
        ("Verdict", verdict),
        ("Phases", phases or "n/a"),
        (
            "Users saw",
            f"outage {_seconds(outcome.timeline.to_json().get('outage_s'))}, health-probe "
            f"availability {'n/a' if availability is None else f'{100 * availability:.0f} %'}"
            f"<br>{_users_table(outcome)}",
        ),
        (
            "Releases",
            f"{e(outcome.bad_release)} &rarr; {e(outcome.good_release)} "
            f"on the {e(outcome.backend)} backend, {e(outcome.environment)} environment",
        ),
        *evidence_rows(outcome.evidence),
        (
            "Machine",
            f"{e(m['hostname'])}: {m['cpu_count']} CPU, {m['memory_gib']} GiB, "
            f"{e(m['os'])}, kernel {e(m['kernel'])}",
        ),
        ("Tools", tools),
        ("Figures", _figures_html(outcome.figures())),
        ("Communication", _communication_html(outcome)),
        ("Runbook coverage", e(covered)),
        (
            "Data volume",
            e(
                f"{outcome.data_volume.seed_users} seeded users; documents "
                + ", ".join(f"{k} {v}" for k, v in outcome.data_volume.documents.items())
            )
            if outcome.data_volume
            else "n/a",
        ),
    ]
    body = "".join(
        "<tr><th style='text-align:left;padding:2px 12px 2px 0;vertical-align:top;"
        f"white-space:nowrap'>{k}</th>"
        f"<td style='padding:2px 0;white-space:normal;overflow-wrap:anywhere'>{v}</td></tr>"
        for k, v in rows
    )
    return f"<table style='border-collapse:collapse;width:100%'>{body}</table>"


def finish_drill(outcome: DrillOutcome, stack: LoadedStack, listener: AllureListener) -> None:
    """After `run_drill`: environment, timeline chart, the alerts monitoring raised, what users
    saw per phase and per step, and a description that tells the story on the test's page."""
    env = attach_environment(outcome)
    chart_path = attach_timeline_chart(outcome)
    if outcome.integrity_evidence:
        attach_json("integrity comparison", outcome.integrity_evidence)
    for name, value in outcome.evidence.items():
        attach_json(name.replace("_", " "), value)
    attach_json("alerts", [a.to_json() for a in outcome.alerts])
    attach_json("users saw, per phase", {k: v.to_json() for k, v in outcome.users_saw().items()})
    data = outcome.to_json()
    attach_json("users saw, per rollback step", data["steps_load"])
    attach_json("timeline", data["timeline"])
    if outcome.communication is not None and outcome.communication.deliveries:
        attach_json("communication", outcome.communication.to_json())
    covered = coverage_text(outcome, stack)
    text = redact(_description_html(outcome, record.runbook_version(stack), env, covered))
    if chart_path is not None:
        encoded = base64.b64encode(chart_path.read_bytes()).decode("ascii")
        text += (
            "<p><img alt='timeline chart: availability, error rate and response time over the "
            f"drill' style='max-width:100%' src='data:image/png;base64,{encoded}'></p>"
        )
    allure.dynamic.description_html(text)
