"""The report pieces that need no stack: availability buckets and the chart (real matplotlib),
the certificate's verdict, the history table, tool versions, the results cleaner and the
record's file and hash handling. Fast (about 2 s), so they run on every change."""

from __future__ import annotations

import platform
import re
from pathlib import Path
from typing import Any

import pytest

from rollback_drill.evidence import chart, environment, record, report_html
from rollback_drill.files.drillrecord import RunRecord
from rollback_drill.monitoring.load import LoadSample
from rollback_drill.monitoring.monitor import Sample
from rollback_drill.process.errors import ReportError
from rollback_drill.programme import certverdict, history
from rollback_drill.steps.timeline import Event
from tests import records


def _samples() -> list[Sample]:
    """Three endpoints every 0.1 s for 6 s; everything down between 2.0 s and 4.0 s."""
    out = []
    for tick in range(60):
        at = tick / 10
        for endpoint in ("frontend", "backend", "ai-chatbot"):
            ok = not 2.0 <= at < 4.0
            out.append(Sample(at, endpoint, ok, 0.004 if ok else 0.0005, 200 if ok else None))
    return out


def _events() -> list[Event]:
    return [
        Event("Fault: deploy release N+1", "phase", 1.5, 0.5),
        Event("fault_injected", "marker", 2.0),
        Event("detected", "marker", 2.1),
        Event("rollback_started", "marker", 2.2),
        Event("rollback_finished", "marker", 3.9),
        Event("verified", "marker", 4.2),
    ]


def test_availability_buckets_share_ok_probes_per_half_second() -> None:
    buckets = chart.availability_buckets(_samples(), 0.5)
    assert [b.start_s for b in buckets] == [i * 0.5 for i in range(12)]
    shares = [b.share_ok for b in buckets]
    assert shares[:4] == [1.0] * 4
    assert shares[4:8] == [0.0] * 4
    assert shares[8:] == [1.0] * 4
    assert chart.availability_buckets([]) == []


def test_chart_is_a_png_with_the_outage_and_the_marks(tmp_path: Path) -> None:
    from matplotlib.image import imread

    path = chart.render(_samples(), _events(), tmp_path / "t.png", title="unit drill")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = imread(str(path))
    assert pixels.shape[:2] == (560, 1100)
    rgb = (pixels[:, :, :3] * 255).reshape(-1, 3)
    for name in ("fault_injected", "detected", "verified"):  # each mark's line is drawn
        hexa = chart.MARKS[name][1]
        wanted = [int(hexa[i : i + 2], 16) for i in (1, 3, 5)]
        close = (abs(rgb - wanted).max(axis=1) < 40).sum()
        assert close > 100, (name, close)


def _load() -> list[LoadSample]:
    """User requests every 50 ms for 6 s; all fail between 2 and 3 s, slow between 3 and 4 s."""
    out = []
    for tick in range(120):
        at = tick / 20
        ok = not 2.0 <= at < 3.0
        latency = 0.08 if 3.0 <= at < 4.0 else 0.005
        out.append(LoadSample(at, "login", latency, ok, 200 if ok else 502, None))
    return out


def test_load_buckets_carry_error_rate_and_percentiles() -> None:
    buckets = chart.load_buckets(_load(), 0.5)
    assert len(buckets) == 12
    assert [b.error_rate for b in buckets[4:6]] == [1.0, 1.0]
    assert all(b.error_rate == 0.0 for b in buckets[:4] + buckets[6:])
    assert buckets[4].p50_s is None  # nothing succeeded: no latency to show, not zero
    assert buckets[6].p50_s == 0.08 and buckets[0].p95_s == 0.005
    assert chart.load_buckets([]) == []


def test_chart_with_load_has_the_users_error_panel(tmp_path: Path) -> None:
    from matplotlib.image import imread

    path = chart.render(_samples(), _events(), tmp_path / "t.png", title="u", load=_load())
    pixels = imread(str(path))
    assert pixels.shape[:2] == (740, 1100)
    rgb = (pixels[:, :, :3] * 255).reshape(-1, 3)
    bars = (abs(rgb - [234, 141, 142]).max(axis=1) < 30).sum()  # #d62728 at alpha 0.6 on white
    assert bars > 500, bars


def _drill(**overrides: Any) -> dict[str, Any]:
    return records.drill(
        **{
            "test": "drills/test_emergency.py::test_x[local]",
            "procedure": "emergency",
            "drill": "emergency",
            "started_utc": "2026-11-24T20:00:00.000000Z",
            "time_to_recover_s": 4.0,
            "data_volume": None,
            **overrides,
        }
    )


def _record(*drills: dict[str, Any], run_id: str = "aaaaaaaaaaaa") -> RunRecord:
    return records.run_model(*drills, run_id=run_id)


def _judge(data: RunRecord | None, exit_status: int = 0) -> certverdict.Verdict:
    return certverdict.judge(
        data, exit_status=exit_status, bad="1.5.0", good="1.4.0", sidecar_ok=True
    )


def test_certificate_verdict() -> None:
    assert _judge(_record(_drill())).certified
    over = _judge(_record(_drill(outcome="over_budget", time_to_recover_s=4.0, budget_s=0.5)), 1)
    assert not over.certified and any("over budget" in r for r in over.reasons)
    failed = _judge(_record(_drill(outcome="failed", failure="DrillFailed: health red")), 1)
    assert not failed.certified and any("health red" in r for r in failed.reasons)
    assert not _judge(_record()).certified, "no drill ran: nothing is certified"
    assert not _judge(None, 1).certified
    wrong_pair = _judge(_record(_drill(bad_release="1.6.0")))
    assert not wrong_pair.certified
    assert not _judge(_record(_drill()), exit_status=1).certified
    tampered = certverdict.judge(
        _record(_drill()), exit_status=0, bad="1.5.0", good="1.4.0", sidecar_ok=False
    )
    assert not tampered.certified


def test_a_certificate_covers_one_environment() -> None:
    """A staging drill does not certify production, nor a production drill staging (a record
    of schema 3 has no environment: production)."""
    staged = _record(_drill(environment="staging"))
    assert not _judge(staged).certified
    assert certverdict.judge(
        staged, exit_status=0, bad="1.5.0", good="1.4.0", sidecar_ok=True, environment="staging"
    ).certified
    refused = certverdict.judge(
        _record(_drill()), exit_status=0, bad="1.5.0", good="1.4.0", sidecar_ok=True,
        environment="staging",
    )  # fmt: skip
    assert not refused.certified and any("not staging" in r for r in refused.reasons)


def test_history_table_and_trend() -> None:
    first = _record(_drill(time_to_recover_s=4.0), run_id="111111111111")
    second = _record(
        _drill(started_utc="2026-12-24T20:00:00.000000Z", time_to_recover_s=5.5),
        run_id="222222222222",
    )
    third = _record(
        _drill(
            started_utc="2026-12-24T20:00:00.000000Z",
            outcome="over_budget",
            time_to_recover_s=9.0,
            budget_s=1.0,
        ),
        run_id="222222222222",
    )
    rows = history.rows([(Path("a"), first), (Path("b"), second), (Path("c"), third)])
    text = history.table(rows)
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["run", "(UTC)", "run"]
    assert "2026-11-24 20:00:00  111111111111" in lines[2]
    assert re.search(r"PASS +4.00 s / 300 s \(1.3 %\)$", lines[2])
    assert "OVER BUDGET" in lines[4] and "9.00 s / 1 s (900.0 %)" in lines[4]
    (trend,) = history.trend(rows)
    assert trend.startswith("emergency [local] 1.5.0 -> 1.4.0: 3 runs, 2 passed")
    assert "last run +3.50 s" in trend


def test_history_command_reads_records_and_skips_others(tmp_path: Path) -> None:
    (tmp_path / "20261124T200000Z-111111111111.json").write_text(_record(_drill()).dumps())
    (tmp_path / "notes.json").write_text('{"schema": "something/else"}')
    text = history.render(tmp_path)
    assert "1 drill(s) from 1 run record(s)" in text
    assert "skipped:" in text and "something/else" in text
    assert "no drill records" in history.render(tmp_path / "missing")


def test_tool_versions_are_probed_once() -> None:
    versions = environment.tool_versions()
    assert versions is environment.tool_versions()
    assert versions["python"] == platform.python_version()
    for tool in ("pytest", "redis-server", "nginx", "anvil", "secantusdb", "node"):
        assert re.match(r"\d+\.\d+", versions[tool] or ""), (tool, versions[tool])
    machine = environment.machine()
    assert machine["cpu_count"] and machine["memory_bytes"] and machine["kernel"]


def test_clean_results_removes_allure_files_only(tmp_path: Path) -> None:
    for name in ("a-result.json", "b-container.json", "c-attachment.txt", "keep.txt"):
        (tmp_path / name).write_text("x")
    (tmp_path / "sub").mkdir()
    assert report_html.clean_results(tmp_path) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt", "sub"]
    with pytest.raises(ReportError, match="no Allure results"):
        report_html.generate_html(tmp_path, tmp_path / "html", history=tmp_path / "h.jsonl")


def test_record_file_hash_and_no_overwrite(tmp_path: Path) -> None:
    data = _record(_drill())
    written = record.write(data, tmp_path)
    assert written.path.name == "20261124T200000Z-aaaaaaaaaaaa.json"
    assert written.sidecar.read_text() == f"{written.sha256}  {written.path.name}\n"
    assert record.verify_sidecar(written.path)
    assert record.read(written.path) == data
    assert record.find(tmp_path, "aaaaaaaaaaaa") == written.path
    with pytest.raises(FileExistsError):
        record.write(data, tmp_path)
    written.path.write_text(written.path.read_text().replace("1.4.0", "1.3.0"))
    assert not record.verify_sidecar(written.path)
