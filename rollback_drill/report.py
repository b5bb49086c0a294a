"""Allure, behind three verbs (step, attach, label) so procedures never import allure and a
run without --alluredir still works (allure's API is a no-op without a listener). Every text
attachment passes through `redact`: no secret reaches a report.

Also the two ends of a drill's report: `finish_drill` (environment, timeline chart and the
description a reader sees first) and `generate_html` (the single-file Allure 3 report with
its history, appended once per run)."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import os
import re
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import allure

from rollback_drill import environment
from rollback_drill.secrets import redact
from rollback_drill.tools import PROJECT_ROOT, find_tool

if TYPE_CHECKING:
    from rollback_drill.drill import DrillOutcome
    from rollback_drill.spec import LoadedStack


@contextmanager
def step(title: str) -> Iterator[None]:
    with allure.step(redact(title)):
        yield


def attach_text(name: str, text: str, kind: str = "text") -> None:
    types = {"text": allure.attachment_type.TEXT, "json": allure.attachment_type.JSON}
    allure.attach(redact(text), name=name, attachment_type=types[kind])


def attach_json(name: str, data: Any) -> None:
    attach_text(name, json.dumps(data, indent=2, default=str), kind="json")


def attach_file(name: str, path: Path) -> None:
    if path.suffix == ".png":
        allure.attach.file(str(path), name=name, attachment_type=allure.attachment_type.PNG)
    else:
        attach_text(name, path.read_text(errors="replace"))


def label_drill(
    *, section: str, severity: str, budget_s: float, procedure: str, backend: str
) -> None:
    """Labels a person filters by: runbook section, decision-matrix severity, backend."""
    section, procedure, backend = redact(section), redact(procedure), redact(backend)
    allure.dynamic.label("runbook_section", section)
    allure.dynamic.label("procedure", procedure)
    allure.dynamic.label("stack_backend", backend)
    allure.dynamic.tag(f"severity:{severity}")
    allure.dynamic.severity(
        {
            "critical": allure.severity_level.BLOCKER,
            "high": allure.severity_level.CRITICAL,
            "medium": allure.severity_level.NORMAL,
            "low": allure.severity_level.MINOR,
        }[severity]
    )
    allure.dynamic.parameter("budget_s", budget_s)
    allure.dynamic.description(
        f"Runbook section: **{section}**\n\nSeverity **{severity}**, time budget {budget_s:.0f} s "
        f"(decision matrix). Stack backend: {backend}."
    )


def label_verification(category: str, runbook_command: str) -> None:
    allure.dynamic.label("verification", redact(category))
    if runbook_command:
        allure.dynamic.description(redact(f"Runbook: `{runbook_command}`"))


# -- the end of a drill: environment, timeline chart, a description that tells the story ------


def attach_png(name: str, path: Path) -> None:
    allure.attach.file(str(path), name=name, attachment_type=allure.attachment_type.PNG)


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
    from rollback_drill import chart

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


def _description_html(outcome: DrillOutcome, runbook: dict[str, str], env: dict[str, Any]) -> str:
    e = html.escape
    budget = outcome.budget
    if outcome.verdict is not None:
        share = 100 * outcome.verdict.time_to_recover_s / budget.budget_s
        state = "PASS" if outcome.passed else "OVER BUDGET"
        verdict = (
            f"<b>{state}</b>: time-to-recover <b>{outcome.verdict.time_to_recover_s:.2f} s</b>"
            f" of a {budget.budget_s:.0f} s budget ({share:.1f} %)"
        )
    else:
        verdict = f"<b>FAIL</b>: did not recover. {e((outcome.failure or '').splitlines()[0])}"
    phases = " &middot; ".join(f"{e(k)} {v:.2f} s" for k, v in outcome.timeline.phases().items())
    availability = outcome.availability().get("overall")
    tools = ", ".join(f"{e(k)} {e(v or 'missing')}" for k, v in env["tools"].items())
    m = env["machine"]
    rows = [
        ("Runbook section", f"<b>{e(outcome.procedure.runbook_section)}</b>"),
        ("Runbook version", f"{e(runbook['path'])} sha256 <code>{runbook['sha256'][:16]}</code>"),
        (
            "Decision matrix",
            f"severity <b>{e(budget.severity)}</b> ({e(budget.impact)}): "
            f"{e(budget.rollback_type)} rollback, time budget <b>{budget.budget_s:.0f} s</b>",
        ),
        ("Verdict", verdict),
        ("Phases", phases or "n/a"),
        (
            "Users saw",
            f"outage {_seconds(outcome.timeline.to_json().get('outage_s'))}, availability "
            f"{'n/a' if availability is None else f'{100 * availability:.0f} %'} over the drill",
        ),
        (
            "Releases",
            f"{e(outcome.bad_release)} &rarr; {e(outcome.good_release)} "
            f"on the {e(outcome.backend)} backend",
        ),
        (
            "Machine",
            f"{e(m['hostname'])}: {m['cpu_count']} CPU, {m['memory_gib']} GiB, "
            f"{e(m['os'])}, kernel {e(m['kernel'])}",
        ),
        ("Tools", tools),
    ]
    body = "".join(
        "<tr><th style='text-align:left;padding:2px 12px 2px 0;vertical-align:top;"
        f"white-space:nowrap'>{k}</th>"
        f"<td style='padding:2px 0;white-space:normal;overflow-wrap:anywhere'>{v}</td></tr>"
        for k, v in rows
    )
    return f"<table style='border-collapse:collapse;width:100%'>{body}</table>"


def finish_drill(outcome: DrillOutcome, stack: LoadedStack) -> None:
    """The hook at the end of `run_drill`: environment, timeline chart, and a description that
    shows section, severity and budget, verdict, phases and the chart on the test's page."""
    from rollback_drill.record import runbook_version

    env = attach_environment(outcome)
    chart_path = attach_timeline_chart(outcome)
    text = redact(_description_html(outcome, runbook_version(stack), env))
    if chart_path is not None:
        encoded = base64.b64encode(chart_path.read_bytes()).decode("ascii")
        text += (
            "<p><img alt='timeline chart: availability and response time over the drill' "
            f"style='max-width:100%' src='data:image/png;base64,{encoded}'></p>"
        )
    allure.dynamic.description_html(text)


# -- the HTML report: Allure 3 (Node), single file, history appended once per run -------------

ALLURERC = PROJECT_ROOT / "reports" / "allurerc.mjs"
GENERATE_TIMEOUT_S = 300.0
# Allure 3's awesome template always embeds Google Analytics; the report must open offline and
# send nothing anywhere (and headless Chromium renders it deterministically without it).
_ANALYTICS = re.compile(
    r"<script async src=\"https://www\.googletagmanager\.com/gtag/js\?id=[^\"]*\"></script>\s*"
    r"<script>\s*window\.dataLayer.*?</script>",
    re.S,
)


class ReportError(RuntimeError):
    """The HTML report could not be generated; the message says what Allure said."""


@dataclass(frozen=True)
class HtmlReport:
    index: Path
    seconds: float
    history: Path
    appended: bool  # False: these results were already in the history (a regeneration)


def results_key(results: Path) -> str:
    """Identifies one run's results: allure-pytest names every result file by a fresh uuid."""
    names = sorted(p.name for p in results.glob("*-result.json"))
    return hashlib.sha256("\n".join(names).encode()).hexdigest()[:32]


def clean_results(results: Path) -> int:
    """Remove Allure result files (only those) so one run's results never leak into the next."""
    removed = 0
    if not results.is_dir():
        return removed
    for path in results.iterdir():
        if path.is_file() and (
            path.name.endswith(("-result.json", "-container.json"))
            or "-attachment" in path.name
            or path.name in {"environment.properties", "executor.json", "categories.json"}
        ):
            path.unlink()
            removed += 1
    return removed


def _ledger(history: Path) -> dict[str, str | None]:
    """results key -> uuid of the history line their generation appended."""
    path = history.with_name(history.name + ".runs")
    entries: dict[str, str | None] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            parts = line.split()
            if parts:
                entries[parts[0]] = parts[1] if len(parts) > 1 else None
    return entries


def _history_without(history: Path, uuid: str | None, into: Path) -> Path:
    """A copy of the history minus one run's line: a regenerated report must not list its own
    run as a past run."""
    kept = []
    if history.exists():
        for line in history.read_text().splitlines():
            if line.strip() and (uuid is None or json.loads(line).get("uuid") != uuid):
                kept.append(line)
    into.write_text("".join(line + "\n" for line in kept))
    return into


def _line_count(history: Path) -> int:
    return (
        sum(1 for line in history.read_text().splitlines() if line.strip())
        if history.exists()
        else 0
    )


def _last_uuid(history: Path) -> str | None:
    lines = [line for line in history.read_text().splitlines() if line.strip()]
    return str(json.loads(lines[-1]).get("uuid")) if lines else None


def _run_allure(argv: list[str], append: bool, cwd: Path) -> None:
    env = {**os.environ, "ROLLBACK_DRILL_APPEND_HISTORY": "1" if append else "0"}
    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            env=env,
            cwd=str(cwd),
            timeout=GENERATE_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise ReportError(f"allure did not finish within {GENERATE_TIMEOUT_S:.0f} s") from None
    if done.returncode != 0:
        raise ReportError(
            f"allure awesome exited {done.returncode}:\n{(done.stdout + done.stderr)[-2000:]}"
        )


def generate_html(
    results: Path, output: Path, *, history: Path, config: Path = ALLURERC
) -> HtmlReport:
    """`allure awesome --single-file` over `results` into `output/index.html`.

    History: Allure appends one line to `history` per generation, so regenerating the same
    results would count a run twice. A ledger beside the history file (`<history>.runs`)
    remembers which results were appended and as which line; a regeneration appends nothing
    (allurerc.mjs turns `appendHistory` off through ROLLBACK_DRILL_APPEND_HISTORY=0) and reads
    the history without that run's own line.
    """
    if not any(results.glob("*-result.json")):
        raise ReportError(f"no Allure results in {results}: run the drills first")
    key = results_key(results)
    ledger = _ledger(history)
    append = key not in ledger
    output.mkdir(parents=True, exist_ok=True)
    history.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    lines_before = _line_count(history)
    with tempfile.TemporaryDirectory(prefix="rollback-drill-history-") as scratch:
        read_from = (
            history if append else _history_without(history, ledger[key], Path(scratch) / "h")
        )
        argv = [
            find_tool("allure"),
            "awesome",
            "--single-file",
            "--config",
            str(config),
            "--output",
            str(output.resolve()),
            "--history-path",
            str(read_from.resolve()),
            str(results.resolve()),
        ]
        _run_allure(argv, append, output.parent.resolve())
    index = output / "index.html"
    if not index.exists():
        raise ReportError(f"allure awesome wrote no {index}")
    page = index.read_text(encoding="utf-8")
    index.write_text(_ANALYTICS.sub("", page), encoding="utf-8")
    if append:
        own = _last_uuid(history) if _line_count(history) > lines_before else None
        with history.with_name(history.name + ".runs").open("a") as handle:
            handle.write(f"{key} {own or ''}".rstrip() + "\n")
    return HtmlReport(index, time.monotonic() - start, history, append)


def report_entries(output: Path) -> dict[str, dict[str, Any]]:
    """The generated report's test results by id (Allure writes test-results.json beside
    index.html): lets a caller open a drill's page, `index.html#<id>`."""
    data = json.loads((output / "test-results.json").read_text())
    by_id: dict[str, dict[str, Any]] = data.get("byId", {})
    return by_id
