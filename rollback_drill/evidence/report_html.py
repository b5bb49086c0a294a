"""The single-file HTML report: Allure 3 (Node) over a run's results, with the history
appended once per run (a regeneration never counts a run twice)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rollback_drill.process.errors import ReportError
from rollback_drill.process.tools import find_tool

# -- the HTML report: Allure 3 (Node), single file, history appended once per run -------------

ALLURERC = Path(__file__).with_name("allurerc.mjs")  # package data beside this module
GENERATE_TIMEOUT_S = 300.0
# Allure 3's awesome template always embeds Google Analytics; the report must open offline and
# send nothing anywhere (and headless Chromium renders it deterministically without it).
_ANALYTICS = re.compile(
    r"<script async src=\"https://www\.googletagmanager\.com/gtag/js\?id=[^\"]*\"></script>\s*"
    r"<script>\s*window\.dataLayer.*?</script>",
    re.S,
)


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


def ledger(history: Path) -> dict[str, str | None]:
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
    known = ledger(history)
    append = key not in known
    output.mkdir(parents=True, exist_ok=True)
    history.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    lines_before = _line_count(history)
    with tempfile.TemporaryDirectory(prefix="rollback-drill-history-") as scratch:
        read_from = (
            history if append else _history_without(history, known[key], Path(scratch) / "h")
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
