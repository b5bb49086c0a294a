"""After the drill: an incident document per drill, in Markdown, beside the report
(`reports/incidents/<record>/<drill>.md`), as the runbook's Post-Rollback Tasks ask of a real
rollback. Built only from what the drill left - the record, its `drill.json` (the timeline)
and the preserved logs - so it can be rebuilt from an archived run:

- the drill's facts (section, matrix row, releases, data volume, verdict, decision);
- the timeline: markers, phases, steps, alerts and messages sent, with times;
- the first error and the error count per service, from the preserved logs (the runbook's
  `grep -i error | wc -l`);
- the runbook's Post-Rollback Tasks checklist, with the items the drill proved ticked and the
  evidence beside each. Items only people can do (root cause, post-mortem) stay open.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rollback_drill.evidence.record import file_sha256
from rollback_drill.files.drillrecord import DrillRecord, Message, RunRecord
from rollback_drill.process import places
from rollback_drill.process.secrets import redact
from rollback_drill.stack import servicelogs

CHECKLIST_SECTION = "Post-Rollback Tasks"
_ERROR = re.compile(r"error", re.IGNORECASE)
_OWN_HEADERS = ("--- ",)  # lines servicelogs/backends add between a service's files


@dataclass(frozen=True)
class ServiceErrors:
    service: str
    count: int
    first: str | None
    first_line: int | None


def error_lines(lines: list[str]) -> list[tuple[int, str]]:
    """The runbook's `grep -i error`: every line naming an error, with its line number."""
    return [
        (n, line)
        for n, line in enumerate(lines, 1)
        if _ERROR.search(line) and not line.startswith(_OWN_HEADERS)
    ]


def errors_per_service(path: Path) -> list[ServiceErrors]:
    found = []
    for service, lines in servicelogs.read(path).items():
        errors = error_lines(lines)
        first = errors[0] if errors else None
        found.append(
            ServiceErrors(
                service,
                len(errors),
                first[1].strip()[:300] if first else None,
                first[0] if first else None,
            )
        )
    return found


def preserved_logs(artifacts: Path) -> Path | None:
    """The logs the procedure preserved during the incident (`rollback-logs-*.log`), else the
    ones every drill keeps at its end."""
    during = sorted(artifacts.glob("rollback-logs-*.log"))
    if during:
        return during[0]
    end = artifacts / servicelogs.END_OF_DRILL
    return end if end.is_file() else None


def checklist(runbook: str, section: str = CHECKLIST_SECTION) -> list[tuple[str, str]]:
    """(subsection, item) for every `- [ ]` line under the runbook's `## <section>`."""
    items: list[tuple[str, str]] = []
    inside = False
    sub = ""
    for line in runbook.splitlines():
        if line.startswith("## "):
            inside = line[3:].strip().lower() == section.lower()
        elif inside and line.startswith("### "):
            sub = line[4:].strip()
        elif inside and (item := re.match(r"^\s*[-*] \[[ xX]\] (.+)$", line)):
            items.append((sub, item.group(1).strip()))
    return items


# -- what the drill proved, per checklist item --------------------------------------------------


@dataclass(frozen=True)
class Evidence:
    drill: DrillRecord  # the record's entry

    def passed(self, prefix: str) -> list[str]:
        return [c for c in self.drill.passed_checks if c.startswith(prefix)]

    def failed(self, prefix: str) -> list[str]:
        return [c for c in self.drill.failed_checks if c.startswith(prefix)]

    def delivered(self, audience: str, kind: str) -> list[Message]:
        wanted = (audience, kind, True)
        return [m for m in _messages(self.drill) if (m.audience, m.kind, m.ok) == wanted]


def _messages(drill: DrillRecord) -> list[Message]:
    return drill.communication.messages if drill.communication else []


def _all_passed(prefix: str, what: str) -> Callable[[Evidence], str | None]:
    def rule(ev: Evidence) -> str | None:
        passed, failed = ev.passed(prefix), ev.failed(prefix)
        if passed and not failed:
            return f"{what}: {', '.join(passed)} passed after the rollback"
        return None

    return rule


def _monitored(ev: Evidence) -> str | None:
    if "monitoring.green" in ev.passed("monitoring."):
        return "monitoring green after the rollback (no alert; users' error rate under the limit)"
    return None


def _message(audience: str, what: str) -> Callable[[Evidence], str | None]:
    def rule(ev: Evidence) -> str | None:
        sent = ev.delivered(audience, "resolve")
        if sent:
            return f"{what}: " + ", ".join(f"{m.channel} ({m.answer})" for m in sent)
        return None

    return rule


def _timeline(ev: Evidence) -> str | None:
    return "the Timeline section of this document, from the drill's event stream"


PROVED: dict[str, Callable[[Evidence], str | None]] = {
    "verify all services operational": _all_passed("health.", "health checks"),
    "confirm data integrity": _all_passed("integrity.", "integrity against the baseline"),
    "test critical user flows": _all_passed("functional.", "user flows"),
    "monitor error rates": _monitored,
    "update status page": _message("status_page", "status page set to resolved"),
    "notify stakeholders of resolution": _message("stakeholders", "resolution delivered"),
    "document incident timeline": _timeline,
}


# -- the document -------------------------------------------------------------------------------


def _utc(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _timeline_rows(timeline: dict[str, Any], drill: DrillRecord) -> list[str]:
    started = float(timeline.get("started_wall", 0.0))
    rows: list[tuple[float, str, str]] = []
    for e in timeline.get("events", []):
        kind, name, at = e["kind"], e["name"], float(e["at_s"])
        if kind == "marker":
            rows.append((at, f"**{name.replace('_', ' ')}**", ""))
        elif kind in ("phase", "step"):
            state = "ok" if e.get("ok") else f"FAILED: {e.get('error') or ''}"
            command = e.get("detail", {}).get("runbook")
            what = f"{kind} {name}" + (f" (`{command}`)" if command else "")
            rows.append((at, what, f"{float(e['duration_s']):.2f} s, {state}"))
        elif kind == "alert":
            alert = e.get("detail", {}).get("alert") or {}
            state = "resolved" if e.get("ok") else "FIRED"
            rows.append((at, f"alert {name} {state}", alert.get("message", "")))
        elif kind == "check" and not e.get("ok"):
            rows.append((at, f"check {name} FAILED", e.get("detail", {}).get("summary", "")))
    for m in _messages(drill):
        state = m.answer if m.ok else f"NOT DELIVERED: {m.error}"
        rows.append((m.at_s, f"message to {m.channel} ({m.step})", state))
    rows.sort(key=lambda r: r[0])
    return [
        f"| {at:8.2f} | {_utc(started + at)} | {_cell(what)} | {_cell(note)} |"
        for at, what, note in rows
    ]


def render(drill: DrillRecord, run: RunRecord, record_path: Path | None = None) -> str:
    """One drill of a record as an incident document."""
    artifacts = places.from_shown(drill.artifacts)
    details_file = artifacts / "drill.json"
    details = json.loads(details_file.read_text()) if details_file.is_file() else {}
    logs = preserved_logs(artifacts) if artifacts.is_dir() else None
    runbook_file = places.from_shown(drill.runbook.path)
    runbook = runbook_file.read_text() if runbook_file.is_file() else ""
    volume = drill.data_volume
    ttr, outage = drill.time_to_recover_s, drill.outage_s
    out = [
        f"# Incident (DRILL): {drill.name}",
        "",
        "> This is the incident document of a rollback **drill**, not of a real incident. It "
        "follows the runbook's Post-Rollback Tasks.",
        "",
        "| | |",
        "|---|---|",
        f"| Outcome | **{drill.outcome.upper().replace('_', ' ')}**"
        + (f": {_cell(drill.failure.splitlines()[0])}" if drill.failure else "")
        + " |",
        f"| Runbook section | {_cell(drill.runbook_section)} |",
        f"| Matrix row | {drill.severity}: {drill.rollback_type} rollback, budget "
        f"{drill.budget_s:.0f} s |",
        f"| Time to recover | {'not recovered' if ttr is None else f'{ttr:.2f} s'}"
        + ("" if outage is None else f" (users' outage {outage:.2f} s)")
        + " |",
        f"| Releases | {drill.bad_release} -> {drill.good_release} on the "
        f"{drill.backend} backend |",
        f"| Data volume | {volume.seed_users if volume else 'n/a'} seeded users; documents "
        + (", ".join(f"{k} {v}" for k, v in (volume.documents if volume else {}).items()) or "n/a")
        + " |",
        f"| Detected by | {_cell('; '.join(drill.detected_by) or 'n/a')} |",
        f"| Decision | {_cell(drill.decision.explanation if drill.decision else 'none')} |",
        f"| Started | {drill.started_utc} |",
        f"| Run | {run.run_id} ({run.invocation.command}"
        + (f", cadence {run.cadence}" if run.cadence else "")
        + ")"
        + (f", record `{record_path.name}`" if record_path else "")
        + " |",
        f"| Artifacts | `{drill.artifacts}` |",
        "",
        "## Timeline",
        "",
        "| t (s) | UTC | event | detail |",
        "|---:|---|---|---|",
        *_timeline_rows(details.get("timeline", {}), drill),
    ]
    if not details:
        out.append(f"\n(no `drill.json` in {drill.artifacts}: timeline not available)")
    out += ["", "## Errors per service", ""]
    if logs is None:
        out.append("No preserved logs in the drill's artifacts.")
    else:
        out += [
            f"From `{logs.name}` (the runbook's `grep -i error | wc -l`, per service).",
            "",
            "| service | errors | first error |",
            "|---|---:|---|",
        ]
        for s in errors_per_service(logs):
            first = f"line {s.first_line}: `{_cell(s.first)}`" if s.first else "-"
            out.append(f"| {s.service} | {s.count} | {first} |")
    out += ["", f"## {CHECKLIST_SECTION}", ""]
    items = checklist(runbook)
    if not items:
        out.append(f"(the runbook {drill.runbook.path} has no {CHECKLIST_SECTION} list)")
    elif file_sha256(runbook_file) != drill.runbook.sha256:
        out.append("(the runbook changed since this drill ran: items as the file has them now)\n")
    evidence = Evidence(drill)
    sub = None
    for subsection, item in items:
        if subsection != sub:
            sub = subsection
            out += [f"### {subsection}", ""] if out[-1] == "" else ["", f"### {subsection}", ""]
        rule = PROVED.get(" ".join(item.lower().split()))
        proof = rule(evidence) if rule else None
        out.append(f"- [x] {item} - proved: {proof}" if proof else f"- [ ] {item}")
    return redact("\n".join(out) + "\n")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "drill"


def write_all(run: RunRecord, record_path: Path, directory: Path) -> list[Path]:
    """Every drill of a record as `<directory>/<record name>/<NN>-<drill>-<backend>.md`."""
    dest = directory / record_path.stem
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for number, drill in enumerate(run.drills, 1):
        name = f"{number:02d}-{_slug(drill.name)}-{drill.backend}"
        path = dest / f"{name}.md"
        path.write_text(render(drill, run, record_path))
        written.append(path)
    return written


__all__ = ["ServiceErrors", "checklist", "errors_per_service", "render", "write_all"]
