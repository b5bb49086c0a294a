"""The certificate a release manager signs for one rollback, written from the run's drill
record (citing its sha256), so it states nothing the record does not: the verdict and its
reasons, the facts of the run (stack, runbook, backend, environment, machine, tools, where
the record, JUnit XML and Allure results are), and each drill's outcome, time-to-recover
against its budget, failure and timeline chart; as Markdown and as one HTML page, secrets
redacted.

Separate from `programme.certify` (choosing and running the drills for a release pair)
because the certificate is written the same way from a run on this machine and from the
merged shards of one spread over several; whether it certifies is `programme.certverdict`.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from rollback_drill.evidence import record
from rollback_drill.files.drillrecord import DrillRecord, RunRecord
from rollback_drill.files.spec import PRODUCTION, load_stack
from rollback_drill.process import places
from rollback_drill.programme.certverdict import Verdict, judge, junit_problems


@dataclass(frozen=True)
class Issued:
    verdict: Verdict
    markdown: Path
    html: Path
    record: Path | None
    record_sha256: str | None


@dataclass(frozen=True)
class Paths:
    """Where one certification run writes: its own Allure results and JUnit XML, the shared
    records and artifacts, and the certificates."""

    reports: Path
    name: str

    @property
    def work(self) -> Path:
        return self.reports / "certify" / self.name

    @property
    def alluredir(self) -> Path:
        return self.work / "allure-results"

    @property
    def junit(self) -> Path:
        return self.work / "junit.xml"

    @property
    def records(self) -> Path:
        return self.reports / "records"

    @property
    def artifacts(self) -> Path:
        return self.reports / "artifacts"

    @property
    def certificates(self) -> Path:
        return self.reports / "certificates"


def _md_cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _ttr(d: DrillRecord) -> str:
    ttr = d.time_to_recover_s
    return "did not recover" if ttr is None else f"{ttr:.2f} s"


def _share(d: DrillRecord) -> str:
    ttr = d.time_to_recover_s
    return "-" if ttr is None else f"{100 * ttr / d.budget_s:.1f} %"


OUTCOME = {"passed": "PASSED", "failed": "FAILED", "over_budget": "OVER BUDGET"}


def _facts(
    issued_at: str,
    stack_name: str,
    data: RunRecord | None,
    record_path: Path | None,
    digest: str | None,
    paths: Paths,
) -> list[tuple[str, str]]:
    facts = [("Issued (UTC)", issued_at), ("Stack", stack_name)]
    if data is not None:
        drills = data.drills
        if drills:
            runbook = drills[0].runbook
            facts.append(("Runbook", f"{runbook.path} (sha256 {runbook.sha256})"))
            facts.append(("Backend", ", ".join(sorted({d.backend for d in drills}))))
            facts.append(("Environment", ", ".join(sorted({d.environment for d in drills}))))
        m = data.environment.machine
        facts.append(
            (
                "Machine",
                f"{m.hostname}: {m.cpu_count} CPU, {m.memory_gib} GiB, kernel {m.kernel}",
            )
        )
        tools = data.environment.tools
        facts.append(("Tools", ", ".join(f"{k} {v or 'missing'}" for k, v in tools.items())))
        facts.append(("Run id", data.run_id))
    if record_path is not None:
        facts.append(("Drill record", places.shown(record_path)))
        facts.append(("Record sha256", f"{digest} (check: sha256sum -c {record_path.name}.sha256)"))
    facts.append(("JUnit XML", places.shown(paths.junit)))
    facts.append(("Allure results", places.shown(paths.alluredir)))
    return facts


def markdown(
    title: str, verdict: Verdict, facts: list[tuple[str, str]], drills: list[DrillRecord]
) -> str:
    state = "CERTIFIED" if verdict.certified else "NOT CERTIFIED"
    lines = [f"# {title}", "", f"**Verdict: {state}**", ""]
    if verdict.certified:
        lines.append("Every drill rolled back, verified green, within its time budget.")
    else:
        lines += [f"- {r}" for r in verdict.reasons]
    lines += ["", "| | |", "|---|---|"]
    lines += [f"| {k} | {_md_cell(v)} |" for k, v in facts]
    lines += [
        "",
        "## Drills",
        "",
        "| Drill | Runbook section | Severity | Outcome | Time-to-recover | Budget | Of budget |",
        "|---|---|---|---|---|---|---|",
    ]
    for d in drills:
        lines.append(
            f"| {_md_cell(d.procedure)} | {_md_cell(d.runbook_section)} | {d.severity} "
            f"| {OUTCOME[d.outcome]} | {_ttr(d)} | {d.budget_s:.0f} s | {_share(d)} |"
        )
    if not drills:
        lines.append("| (none) | | | | | | |")
    for d in drills:
        if d.failure:
            lines += ["", f"### {d.procedure}: failure", "", "```", d.failure, "```"]
    return "\n".join(lines) + "\n"


def html_page(
    title: str, verdict: Verdict, facts: list[tuple[str, str]], drills: list[DrillRecord]
) -> str:
    e = html.escape
    state = "CERTIFIED" if verdict.certified else "NOT CERTIFIED"
    colour = "#1a7f37" if verdict.certified else "#cf222e"
    reasons = (
        "<p>Every drill rolled back, verified green, within its time budget.</p>"
        if verdict.certified
        else "<ul>" + "".join(f"<li>{e(r)}</li>" for r in verdict.reasons) + "</ul>"
    )
    fact_rows = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in facts)
    drill_rows = (
        "".join(
            f"<tr><td>{e(d.procedure)}</td><td>{e(d.runbook_section)}</td>"
            f"<td>{e(d.severity)}</td><td class='{e(d.outcome)}'>"
            f"{e(OUTCOME[d.outcome])}</td><td>{e(_ttr(d))}</td>"
            f"<td>{d.budget_s:.0f} s</td><td>{e(_share(d))}</td></tr>"
            for d in drills
        )
        or "<tr><td colspan='7'>(none)</td></tr>"
    )
    charts = ""
    for d in drills:
        png = places.from_shown(d.artifacts) / "timeline.png"
        if png.exists():
            data = base64.b64encode(png.read_bytes()).decode("ascii")
            charts += (
                f"<h3>{e(d.procedure)}: timeline</h3>"
                f"<img alt='timeline chart' src='data:image/png;base64,{data}'>"
            )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{e(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #1f2328; }}
.verdict {{ font-size: 1.6em; font-weight: bold; color: #fff; background: {colour};
  padding: .4em .8em; border-radius: 6px; display: inline-block; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
th, td {{ border: 1px solid #d0d7de; padding: 4px 10px; text-align: left; vertical-align: top; }}
td.passed {{ color: #1a7f37; font-weight: bold; }}
td.failed, td.over_budget {{ color: #cf222e; font-weight: bold; }}
img {{ max-width: 100%; }}
</style></head><body>
<h1>{e(title)}</h1>
<p class="verdict">{state}</p>
{reasons}
<table>{fact_rows}</table>
<h2>Drills</h2>
<table><tr><th>Drill</th><th>Runbook section</th><th>Severity</th><th>Outcome</th>
<th>Time-to-recover</th><th>Budget</th><th>Of budget</th></tr>{drill_rows}</table>
{charts}
</body></html>
"""


def issue(
    *,
    bad: str,
    good: str,
    stack: Path,
    paths: Paths,
    run_id: str,
    exit_status: int,
    issued: datetime,
    environment: str = PRODUCTION,
) -> Issued:
    """Write the certificate pair from the run's record (or its absence)."""
    from rollback_drill.process.secrets import redact

    loaded = load_stack(stack)
    record_path = record.find(paths.records, run_id)
    data = record.read(record_path) if record_path else None
    digest = record.file_sha256(record_path) if record_path else None
    sidecar_ok = record.verify_sidecar(record_path) if record_path else False
    verdict = judge(
        data,
        exit_status=exit_status,
        bad=bad,
        good=good,
        sidecar_ok=sidecar_ok,
        problems=junit_problems(paths.junit),
        environment=environment,
    )
    where = "" if environment == PRODUCTION else f" on {environment}"
    title = f"Rollback certificate: {loaded.spec.name} {bad} -> {good}{where}"
    facts = _facts(
        issued.strftime("%Y-%m-%d %H:%M:%S"),
        f"{loaded.spec.name} ({places.shown(loaded.path)})",
        data,
        record_path,
        digest,
        paths,
    )
    drills = data.drills if data else []
    paths.certificates.mkdir(parents=True, exist_ok=True)
    md_path = paths.certificates / f"{paths.name}.md"
    html_path = paths.certificates / f"{paths.name}.html"
    md_path.write_text(redact(markdown(title, verdict, facts, drills)), encoding="utf-8")
    html_path.write_text(redact(html_page(title, verdict, facts, drills)), encoding="utf-8")
    return Issued(verdict, md_path, html_path, record_path, digest)


__all__ = ["Issued", "Paths", "html_page", "issue", "markdown"]
