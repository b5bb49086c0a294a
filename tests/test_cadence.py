"""The calendar and the trend, from records written here (no stack): when each cadence last
passed and which are overdue (`history --check-overdue`), a cadence's suite as a marker
expression, trends grouped by data volume, and records of schemas 1 to 3 read side by side."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from rollback_drill.cli import app as cli
from rollback_drill.cli import programme as cli_programme
from rollback_drill.evidence import record
from rollback_drill.files.spec import load_stack
from rollback_drill.process.errors import SpecError
from rollback_drill.programme import cadence, history
from tests.helpers import copy_stack_file
from tests.paths import PROJECT_ROOT

STACK = PROJECT_ROOT / "fixtures" / "safepsy" / "stack.yaml"
NOW = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)


def _drill(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "test": "drills/test_emergency.py::test_emergency_rollback[local-service_down]",
        "test_outcome": "passed",
        "drill": "emergency: service unavailable",
        "procedure": "emergency",
        "severity": "critical",
        "backend": "local",
        "bad_release": "1.5.0",
        "good_release": "1.4.0",
        "outcome": "passed",
        "started_utc": "2027-02-20T12:00:00.000000Z",
        "time_to_recover_s": 6.0,
        "budget_s": 300.0,
        "data_volume": {"seed_users": 200, "documents": {"users": 201, "sessions": 40}},
    }
    base.update(overrides)
    return base


def _run(
    when: str, *drills: dict[str, Any], cadence: str | None = None, verdict: str = "pass"
) -> dict[str, Any]:
    return {
        "schema": record.SCHEMA_ID,
        "run_id": f"run{when[:10].replace('-', '')}{cadence or ''}"[:12],
        "started_utc": when,
        "finished_utc": when,
        "invocation": {"command": "run", "args": []},
        "cadence": cadence,
        "summary": {"verdict": verdict},
        "drills": list(drills) or [_drill(started_utc=when)],
    }


def _write(directory: Path, *runs: dict[str, Any]) -> Path:
    directory.mkdir(exist_ok=True)
    for n, data in enumerate(runs):
        (directory / f"{n:03d}-{data['run_id']}.json").write_text(json.dumps(data))
    return directory


def test_when_each_cadence_last_passed() -> None:
    runs = [
        _run("2027-02-20T12:00:00.000000Z", cadence="monthly"),  # 9 days ago: ok
        _run("2026-11-01T12:00:00.000000Z", cadence="quarterly"),  # 120 days: overdue
        _run("2027-02-25T12:00:00.000000Z", cadence="quarterly", verdict="fail"),
        _run("2027-02-26T12:00:00.000000Z"),  # no cadence: counts for none
    ]
    cadences = load_stack(STACK).spec.cadences
    found = {s.name: s for s in cadence.statuses([(Path(), r) for r in runs], cadences, NOW)}
    assert not found["monthly"].overdue
    assert found["monthly"].last_pass == datetime(2027, 2, 20, 12, tzinfo=UTC)
    assert found["quarterly"].overdue, "a failed quarterly run does not satisfy the quarter"
    assert found["quarterly"].last_pass == datetime(2026, 11, 1, 12, tzinfo=UTC)
    assert found["annual"].overdue and found["annual"].last_pass is None
    assert "last passed 2027-02-20 12:00 UTC (9.0 days ago" in found["monthly"].explain()
    assert found["quarterly"].explain().endswith("OVERDUE")
    assert "never passed" in found["annual"].explain()


def test_history_check_overdue_exit_status(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    today = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000000Z")
    records = _write(
        tmp_path / "records",
        _run(today, cadence="monthly"),
        _run(today, cadence="quarterly"),
    )
    assert cli.main(["history", "--records", str(records), "--check-overdue"]) == 1
    out = capsys.readouterr().out
    assert "OVERDUE: annual" in out and "monthly    every  31 days: last passed" in out
    _write(records, _run(today, cadence="annual") | {"run_id": "annualrun001"})
    assert cli.main(["history", "--records", str(records), "--check-overdue"]) == 0
    assert "no cadence is overdue" in capsys.readouterr().out
    assert cli.main(["history", "--records", str(tmp_path / "none"), "--check-overdue"]) == 1


def test_a_cadence_is_a_marker_expression_from_the_stack_file(tmp_path: Path) -> None:
    loaded = load_stack(STACK)
    assert cadence.selection(loaded, "quarterly").select == (
        "emergency or database or redis_rollback or contract or staging or automation"
    )
    with pytest.raises(SpecError, match=r"no cadence 'weekly'; expected one of \['annual'"):
        cadence.selection(loaded, "weekly")
    typo = copy_stack_file(
        tmp_path,
        "typo.yaml",
        lambda s: s.update(
            cadences={"monthly": {"select": "emergncy or planned", "period_days": 31}}
        ),
    )
    with pytest.raises(
        SpecError, match=r"cadences.monthly.select: unknown marker\(s\) \['emergncy'\]"
    ):
        cadence.selection(load_stack(typo), "monthly")
    zero = copy_stack_file(
        tmp_path,
        "zero.yaml",
        lambda s: s.update(cadences={"Monthly": {"select": "drill", "period_days": 0}}),
    )
    with pytest.raises(SpecError) as caught:
        load_stack(zero)
    assert "cadences.Monthly.[key]: String should match pattern" in str(caught.value)
    assert "cadences.Monthly.period_days: Input should be greater than 0" in str(caught.value)
    # `run --cadence` hands pytest the expression and the record its name.
    assert cli_programme._cadence_args(STACK, "annual", ["-k", "slow"]) == [
        "-m", "drill", "--drill-cadence", "annual"
    ]  # fmt: skip
    with pytest.raises(SpecError, match="do not pass -m as well"):
        cli_programme._cadence_args(STACK, "annual", ["-m", "emergency"])


def test_trend_compares_like_with_like() -> None:
    small = _run("2027-02-01T12:00:00.000000Z", _drill(time_to_recover_s=6.0))
    big = _run(
        "2027-02-02T12:00:00.000000Z",
        _drill(
            time_to_recover_s=60.0,
            data_volume={"seed_users": 50000, "documents": {"users": 50001, "sessions": 9000}},
        ),
    )
    small_again = _run("2027-02-03T12:00:00.000000Z", _drill(time_to_recover_s=6.5))
    old = _run("2026-01-01T12:00:00.000000Z", _drill(time_to_recover_s=9.0))
    old["schema"] = "rollback-drill/record/2"
    del old["drills"][0]["data_volume"]
    rows = history.rows([(Path(), r) for r in (old, small, big, small_again)])
    lines = history.trend(rows)
    assert lines == [
        "emergency: service unavailable [local] 1.5.0 -> 1.4.0: 1 run, 1 passed, TTR median "
        "9.00 s (min 9.00, max 9.00)",
        "emergency: service unavailable [local, 200 users] 1.5.0 -> 1.4.0: 2 runs, 2 passed, "
        "TTR median 6.25 s (min 6.00, max 6.50), last run +0.50 s vs the one before; documents "
        "sessions 40, users 201",
        "emergency: service unavailable [local, 50000 users] 1.5.0 -> 1.4.0: 1 run, 1 passed, "
        "TTR median 60.00 s (min 60.00, max 60.00); documents sessions 9000, users 50001",
    ]
    table = history.table(rows).splitlines()
    assert table[0].split()[:8] == [
        "run",
        "(UTC)",
        "run",
        "id",
        "via",
        "cadence",
        "drill",
        "backend",
    ]
    assert " 50000 users " in table[4] and "  -  " in table[2]


def test_records_of_every_schema_are_read(tmp_path: Path) -> None:
    five = _run("2027-02-01T12:00:00.000000Z", cadence="monthly")
    four = _run("2027-01-15T12:00:00.000000Z") | {"schema": "rollback-drill/record/4"}
    three = _run("2027-01-01T12:00:00.000000Z") | {"schema": "rollback-drill/record/3"}
    two = _run("2026-12-01T12:00:00.000000Z") | {"schema": "rollback-drill/record/2"}
    one = _run("2026-10-01T12:00:00.000000Z") | {"schema": "rollback-drill/record/1"}
    other = _run("2026-09-01T12:00:00.000000Z") | {"schema": "rollback-drill/record/9"}
    found, problems = record.load_all(_write(tmp_path, five, four, three, two, one, other))
    assert [d["schema"][-1] for _, d in found] == ["1", "2", "3", "4", "5"]
    assert len(problems) == 1 and "record/9" in problems[0]
    text = history.render(tmp_path, cadences=load_stack(STACK).spec.cadences, now=NOW)
    assert "5 drill(s) from 5 run record(s)" in text
    assert "monthly    every  31 days: last passed 2027-02-01" in text
