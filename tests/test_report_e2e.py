"""The reports end to end, as their readers get them: `rollback-drill run` (HTML report, drill
record, history), `rollback-drill certify` on a good rollback and on one that runs over budget,
`rollback-drill history`, the report rendered in headless Chromium, and a scan of every output
file for secrets planted into the run.

Three real drills (local backend, run concurrently, each in its own reports directory) are
shared by every test here: the main run, the good certification and the over-budget one.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from rollback_drill.evidence import record, report_html
from rollback_drill.files.drillrecord import RunRecord
from rollback_drill.process.tools import find_tool
from tests.helpers import copy_stack_file
from tests.paths import PROJECT_ROOT

pytestmark = pytest.mark.slow  # `rollback-drill run` and `certify` end to end: not in the fast tier

STACK = PROJECT_ROOT / "fixtures" / "safepsy" / "stack.yaml"
CONFIG = PROJECT_ROOT / "pyproject.toml"
RUNBOOK = PROJECT_ROOT / "fixtures" / "safepsy" / "ROLLBACK_RUNBOOK.md"
CLI_TIMEOUT_S = 300
PLANTED_TEST = '''
"""Planted by tests/test_report_e2e.py: a credentials-bearing URL through every report verb."""
import os

from rollback_drill.evidence import report


def test_planted_credentials_url() -> None:
    url = os.environ["ROLLBACK_DRILL_PLANTED_URL"]
    report.label_verification(f"planted {url}", f"curl {url}")
    with report.step(f"connect to {url}"):
        report.attach_text("connection string", f"MONGODB_URI={url}")
        report.attach_json("configuration", {"mongodb_uri": url, "note": "planted"})
'''


@dataclass(frozen=True)
class Planted:
    password: str  # SAFEPSY_TEST_PASSWORD: the stack's test account uses it, checks log in
    url_password: str  # inside a mongodb:// URL passed through the report API
    env: dict[str, str]

    @property
    def values(self) -> list[str]:
        return [self.password, self.url_password]


@dataclass(frozen=True)
class Runs:
    main: Path  # reports dir of `run`
    good: Path  # reports dir of the good certification
    bad: Path  # reports dir of the over-budget certification
    run: subprocess.CompletedProcess[str]
    certified: subprocess.CompletedProcess[str]
    over: subprocess.CompletedProcess[str]
    seconds: float

    @property
    def all(self) -> tuple[Path, Path, Path]:
        return (self.main, self.good, self.bad)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "rollback_drill.cli", *args]


def _finish(child: subprocess.Popen[str], argv: list[str]) -> subprocess.CompletedProcess[str]:
    try:
        out, err = child.communicate(timeout=CLI_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGTERM)
        out, err = child.communicate(timeout=30)
    return subprocess.CompletedProcess(argv, child.returncode, out, err)


def _start(argv: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        argv,
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )


def over_budget_stack(directory: Path) -> Path:
    """A copy of the reference stack file whose decision matrix gives a critical issue 0.5 s:
    the emergency rollback still works but cannot recover in time, so the drill fails."""

    def tighten(spec: dict[str, Any]) -> None:
        for row in spec["decision_matrix"]:
            if row["severity"] == "critical":
                row["budget_s"] = 0.5

    return copy_stack_file(directory, "stack-over-budget.yaml", tighten)


@pytest.fixture(scope="module")
def planted() -> Planted:
    password = "pw-" + secrets.token_hex(12)
    url_password = "url-" + secrets.token_hex(12)
    url = f"mongodb://drill-admin:{url_password}@127.0.0.1:27017/safepsy?authSource=admin"
    env = {
        **os.environ,
        "SAFEPSY_TEST_PASSWORD": password,
        "ROLLBACK_DRILL_PLANTED_URL": url,
    }
    return Planted(password, url_password, env)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, planted: Planted) -> Runs:
    base = tmp_path_factory.mktemp("report-e2e")
    main, good, bad = base / "main", base / "good", base / "bad"
    planted_test = base / "planted" / "test_planted_secrets.py"
    planted_test.parent.mkdir()
    planted_test.write_text(PLANTED_TEST)
    certify = ["certify", "--from", "1.5.0", "--to", "1.4.0", "--backend", "local"]
    # the main job, plus a test that passes a credentials URL through the report API
    # (one drill of the main job: the report machinery is the same for all of them)
    extra = ["--", "-c", str(CONFIG), "-k", "service_down or planted", str(planted_test)]
    argvs = [
        _cli("run", "--backend", "local", "--reports-dir", str(main), *extra),
        _cli(*certify, "--reports-dir", str(good)),
        _cli(*certify, "--reports-dir", str(bad), "--stack", str(over_budget_stack(base))),
    ]
    start = time.monotonic()
    children = [_start(argv, planted.env) for argv in argvs]
    run, certified, over = (_finish(c, a) for c, a in zip(children, argvs, strict=True))
    return Runs(main, good, bad, run, certified, over, time.monotonic() - start)


def _explain(done: subprocess.CompletedProcess[str]) -> str:
    return f"exit {done.returncode}\n{done.stdout[-4000:]}\n{done.stderr[-3000:]}"


def _records(reports: Path) -> list[tuple[Path, RunRecord]]:
    found, problems = record.load_all(reports / "records")
    assert not problems
    return found


def _drill_entry(reports: Path) -> tuple[str, dict[str, Any]]:
    entries = report_html.report_entries(reports / "html")
    drills = [(k, v) for k, v in entries.items() if str(v["name"]).startswith("test_emergency")]
    assert len(drills) == 1, entries
    return drills[0]


# -- run: HTML report and drill record ----------------------------------------------------------


def test_run_writes_html_report_and_record(runs: Runs) -> None:
    assert runs.run.returncode == 0, _explain(runs.run)
    index = runs.main / "html" / "index.html"
    assert index.is_file()
    assert "HTML report:" in runs.run.stdout
    page = index.read_text()
    assert "googletagmanager" not in page, "the report must open offline and call no one"
    _, entry = _drill_entry(runs.main)
    assert entry["status"] == "passed"
    run_records = [r for _, r in _records(runs.main) if r.invocation.command == "run"]
    assert len(run_records) == 1
    (drill,) = run_records[0].drills
    assert drill.procedure == "emergency"
    assert (drill.backend, drill.bad_release, drill.good_release) == (
        "local",
        "1.5.0",
        "1.4.0",
    )
    assert drill.outcome == "passed" and drill.test_outcome == "passed"
    assert 0 < (drill.time_to_recover_s or 0) < drill.budget_s == 300
    assert set(drill.phases) == {"detect", "decide", "execute", "verify"}
    assert drill.runbook.sha256 == hashlib.sha256(RUNBOOK.read_bytes()).hexdigest()
    assert (PROJECT_ROOT / drill.artifacts / "timeline.png").is_file()


def test_every_record_matches_schema_and_its_hash(runs: Runs) -> None:
    """Each record was read back through its model (`_records`), and is the model's bytes."""
    found = [item for reports in runs.all for item in _records(reports)]
    assert len(found) == 3, [p.name for p, _ in found]
    for path, data in found:
        assert re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{12}\.json", path.name)
        assert json.loads(path.read_text()) == data.to_json(), "a field the model drops"
        assert record.verify_sidecar(path)
    path, _ = found[0]
    tampered = path.with_name("tampered-" + path.name)
    tampered.write_text(path.read_text().replace('"passed"', '"failed"', 1))
    shutil.copy(
        path.with_name(path.name + ".sha256"), tampered.with_name(tampered.name + ".sha256")
    )
    try:
        assert not record.verify_sidecar(tampered)
    finally:
        tampered.unlink()
        tampered.with_name(tampered.name + ".sha256").unlink()


# -- the report in a browser --------------------------------------------------------------------


def _chromium(*args: str, timeout: float = 60) -> str:
    """Headless Chromium in its own process group, killed with it on timeout."""
    argv = [
        find_tool("chromium"),
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--virtual-time-budget=8000",
        *args,
    ]
    child = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = child.communicate(timeout=timeout)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
    return out


def _visible_text(dom: str) -> str:
    body = re.sub(r"<script\b.*?</script>", " ", dom, flags=re.S)
    body = re.sub(r"<style\b.*?</style>", " ", body, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body))


def test_chromium_shows_the_drill_page(runs: Runs) -> None:
    assert runs.run.returncode == 0, _explain(runs.run)
    index = runs.main / "html" / "index.html"
    test_id, _ = _drill_entry(runs.main)
    url = f"{index.as_uri()}#{test_id}"
    shot = runs.main / "screenshots" / "drill.png"
    shot.parent.mkdir(exist_ok=True)
    # One browser start renders the drill's page, dumps its DOM and takes the screenshot.
    dom = _chromium("--window-size=1400,2400", "--dump-dom", f"--screenshot={shot}", url)
    text = _visible_text(dom)
    assert "rollback-drill" in text  # the report's name, in the header
    assert "test_emergency_rollback" in text
    assert "Passed" in text
    for step in ("Baseline:", "Fault:", "Detect:", "Assess:", "Rollback: Rollback Procedures"):
        assert step in text, step
    assert "integrity comparison" in text and "timeline chart" in text
    assert "from_release" in text and "1.5.0" in text
    # The description (an iframe's srcdoc) carries the section, budget, verdict and the chart.
    assert "Emergency Rollback (Critical Issues)" in dom
    assert "time budget" in dom and "PASS" in dom
    assert "data:image/png;base64," in dom
    from matplotlib.image import imread

    pixels = imread(str(shot))
    assert pixels.shape[:2] == (2400, 1400)
    colours = {tuple(p) for p in pixels[::7, ::7, :3].reshape(-1, 3).round(2).tolist()}
    assert len(colours) > 200, "a blank or spinner-only page has a handful of colours"
    # The chart is on screen: the fault-to-green shading (#d62728 at 6 % on white) covers a
    # large area, and the availability line / probe dots (#1f77b4) are drawn.
    rgb = pixels[:, :, :3] * 255
    shade = (abs(rgb - [252, 241, 241]).max(axis=2) < 4).sum()
    line = (abs(rgb - [31, 119, 180]).max(axis=2) < 25).sum()
    assert shade > 20000 and line > 300, f"no timeline chart in {shot} ({shade}, {line})"


# -- history: each run appended exactly once ---------------------------------------------------


def _history_lines(reports: Path) -> list[dict[str, Any]]:
    path = reports / "history" / "history.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _past_runs_shown(index: Path) -> list[dict[str, Any]]:
    """The past runs a report embeds (Allure: one data/history/<run uuid>.json per run)."""
    page = index.read_text()
    found = re.findall(r'd\("data/history/[^"]+","([A-Za-z0-9+/=]*)"\)', page)
    return [json.loads(base64.b64decode(payload)) for payload in found]


def test_history_appends_each_run_once(runs: Runs) -> None:
    assert runs.run.returncode == 0, _explain(runs.run)
    assert len(_history_lines(runs.main)) == 1
    again = subprocess.run(
        _cli("report", "--reports-dir", str(runs.main)),
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
    )
    assert again.returncode == 0, _explain(again)
    assert "not appended again" in again.stdout
    assert len(_history_lines(runs.main)) == 1
    assert _past_runs_shown(runs.main / "html" / "index.html") == [], "its own run is not past"
    # A second run (the good certification's results) is appended.
    (certify_results,) = (runs.good / "certify").glob("*/allure-results")
    second = _cli(
        "report",
        "--reports-dir",
        str(runs.main),
        "--results",
        str(certify_results),
        "-o",
        str(runs.main / "html-certify"),
    )
    done = subprocess.run(second, capture_output=True, text=True, timeout=CLI_TIMEOUT_S)
    assert done.returncode == 0, _explain(done)
    lines = _history_lines(runs.main)
    assert len(lines) == 2
    drill_ids = [
        {k for k, v in line["testResults"].items() if "emergency" in v["name"]} for line in lines
    ]
    assert drill_ids[0] and drill_ids[0] == drill_ids[1], "one drill, one trend across runs"
    (past,) = _past_runs_shown(runs.main / "html-certify" / "index.html")  # the first run, once
    assert past["uuid"] == lines[0]["uuid"]
    drill = [v for v in past["testResults"].values() if "emergency" in v["name"]]
    assert [v["status"] for v in drill] == ["passed"]


def test_history_command_prints_the_trend(runs: Runs, tmp_path: Path) -> None:
    for reports in (runs.main, runs.good):  # two runs' records, gathered as an auditor would
        for path in (reports / "records").iterdir():
            shutil.copy(path, tmp_path / path.name)
    done = subprocess.run(
        _cli("history", "--records", str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, _explain(done)
    rows = [line for line in done.stdout.splitlines() if re.match(r"\d{4}-\d\d-\d\d ", line)]
    assert len(rows) == 3, done.stdout  # run: emergency; certify: emergency, automation
    assert len([r for r in rows if " run " in r]) == 1
    assert len([r for r in rows if " certify " in r]) == 2
    assert all("PASS" in r and "/ 300 s" in r for r in rows if "emergency  local" in r)
    assert "emergency: service unavailable [local, 200 users] 1.5.0 -> 1.4.0: 2 runs, 2 passed" in (
        done.stdout
    )
    over = subprocess.run(
        _cli("history", "--records", str(runs.bad / "records")),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "OVER BUDGET" in over.stdout and "/ 0 s" in over.stdout


# -- certify ------------------------------------------------------------------------------------


def _certificate(reports: Path, suffix: str) -> str:
    (path,) = (reports / "certificates").glob(f"1.5.0-to-1.4.0-*{suffix}")
    return path.read_text()


def _junit_counts(reports: Path) -> dict[str, int]:
    (path,) = (reports / "certify").glob("*/junit.xml")
    suite = ET.parse(path).getroot().find("testsuite")
    assert suite is not None
    return {k: int(suite.get(k, "0")) for k in ("tests", "failures", "errors")}


def test_certify_a_good_rollback_exits_zero(runs: Runs) -> None:
    assert runs.certified.returncode == 0, _explain(runs.certified)
    assert "CERTIFIED" in runs.certified.stdout
    markdown = _certificate(runs.good, ".md")
    assert "**Verdict: CERTIFIED**" in markdown
    assert re.search(
        r"\| emergency \| .* \| critical \| PASSED \| \d+\.\d\d s \| 300 s \|", markdown
    )
    ((path, data),) = _records(runs.good)
    assert data.run_id in markdown
    assert hashlib.sha256(path.read_bytes()).hexdigest() in markdown
    assert data.invocation.command == "certify"
    page = _certificate(runs.good, ".html")
    assert "CERTIFIED" in page and "data:image/png;base64," in page
    # every drill that rolls 1.5.0 back: the emergency one and the automated rollback
    assert _junit_counts(runs.good) == {"tests": 2, "failures": 0, "errors": 0}


def test_certify_exits_nonzero_when_a_drill_runs_over_budget(runs: Runs) -> None:
    assert runs.over.returncode == 1, _explain(runs.over)
    assert "NOT CERTIFIED" in runs.over.stdout
    markdown = _certificate(runs.bad, ".md")
    assert "**Verdict: NOT CERTIFIED**" in markdown
    assert "ran over budget" in markdown and "OVER BUDGET" in markdown
    assert _junit_counts(runs.bad)["failures"] == 2
    ((_, data),) = _records(runs.bad)
    assert data.summary.verdict == "fail"
    assert {d.outcome for d in data.drills} == {"over_budget"}


# -- secrets ------------------------------------------------------------------------------------


def _views(path: Path) -> Iterator[tuple[str, bytes]]:
    """A file's bytes plus what hides inside: gzip/tar members, Allure's base64 payloads."""
    raw = path.read_bytes()
    yield str(path), raw
    if raw[:2] == b"\x1f\x8b":
        unpacked = gzip.decompress(raw)
        yield f"{path} (gunzip)", unpacked
        try:
            with tarfile.open(fileobj=io.BytesIO(unpacked)) as tar:
                for member in tar.getmembers():
                    handle = tar.extractfile(member)
                    if handle is not None:
                        yield f"{path}!{member.name}", handle.read()
        except tarfile.TarError:
            pass
    if path.suffix == ".html":
        for name, payload in re.findall(rb'd\("([^"]+)","([A-Za-z0-9+/=]+)"\)', raw):
            yield f"{path}#{name.decode()}", base64.b64decode(payload)


def _encodings(value: str) -> list[bytes]:
    data = value.encode()
    forms = [data]
    for shift in range(3):  # the secret's base64 at any alignment inside a longer payload
        encoded = base64.b64encode(b"\0" * shift + data)
        forms.append(encoded[(shift * 4 + 2) // 3 + 1 : -4])
    return forms


def test_no_planted_secret_in_any_output(runs: Runs, planted: Planted) -> None:
    assert runs.run.returncode == 0, _explain(runs.run)
    tops = {reports: [p for p in reports.rglob("*") if p.is_file()] for reports in runs.all}
    files = [p for found in tops.values() for p in found]
    kinds = {p.relative_to(reports).parts[0] for reports, found in tops.items() for p in found}
    assert {"allure-results", "html", "history", "records", "artifacts", "certificates"} <= kinds
    assert any(p.name == "manifest.json" for p in files), "the emergency backup's manifest"
    assert any(p.name.startswith("rollback-logs-") for p in files), "the preserved logs"
    leaks = []
    scanned = 0
    for path in files:
        for where, data in _views(path):
            scanned += 1
            for value in planted.values:
                if any(form in data for form in _encodings(value)):
                    leaks.append(f"{value[:6]}... in {where}")
    assert not leaks, "\n".join(leaks)
    # The planted URL did reach the report, redacted: the scan looked at the right place.
    results = b"".join(p.read_bytes() for p in (runs.main / "allure-results").iterdir())
    assert b"mongodb://drill-admin:***@127.0.0.1" in results
    assert scanned > len(files)


def test_setup_and_teardown_show_named_fixtures_with_statuses(runs: Runs) -> None:
    """No `<lambda>` in an unknown state: a reader takes that for something broken."""
    seen = []
    for path in (runs.main / "allure-results").glob("*-container.json"):
        data = json.loads(path.read_text())
        for fixture in data.get("befores", []) + data.get("afters", []):
            seen.append((fixture["name"], fixture.get("status")))
    assert seen
    assert not [name for name, _ in seen if "<lambda>" in name or name.split("::")[-1].isdigit()]
    assert all(status == "passed" for _, status in seen), seen
    assert any(name == "drill_stack::teardown" for name, _ in seen)
