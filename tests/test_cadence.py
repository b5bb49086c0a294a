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
from rollback_drill.files import drillrecord, recordfile
from rollback_drill.files.drillrecord import RunRecord
from rollback_drill.files.spec import load_stack
from rollback_drill.process.errors import SpecError
from rollback_drill.programme import cadence, history
from tests import records
from tests.helpers import copy_stack_file
from tests.paths import PROJECT_ROOT

STACK = PROJECT_ROOT / "fixtures" / "safepsy" / "stack.yaml"
NOW = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)


def _drill(**overrides: Any) -> dict[str, Any]:
    return records.drill(**overrides)


def _run(
    when: str, *drills: dict[str, Any], cadence: str | None = None, verdict: str = "pass"
) -> dict[str, Any]:
    data = records.run(
        *(drills or [_drill(started_utc=when)]),
        run_id=f"run{when[:10].replace('-', '')}{cadence or ''}"[:12],
        started_utc=when,
        finished_utc=when,
        cadence=cadence,
    )
    data["summary"]["verdict"] = verdict
    return data


def _model(data: dict[str, Any]) -> RunRecord:
    return RunRecord.model_validate(data)


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
    pairs = [(Path(), _model(r)) for r in runs]
    found = {s.name: s for s in cadence.statuses(pairs, cadences, NOW)}
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
    migrated = recordfile.parse(old, "old.json")
    assert migrated.format == drillrecord.FORMAT and migrated.drills[0].data_volume is None
    runs = [migrated, *(_model(r) for r in (small, big, small_again))]
    rows = history.rows([(Path(), r) for r in runs])
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


def _older(data: dict[str, Any], major: int) -> dict[str, Any]:
    """`data` as format `major` wrote it: without the fields later formats added."""
    added = {  # format -> the run's and each drill's keys it added
        5: (["source", "shard", "merged_from"], ["test_seconds"]),
        4: ([], ["environment", "evidence"]),
        3: (["cadence", "runbook_coverage"], ["communication", "data_volume", "passed_checks"]),
        2: ([], ["drill", "alerts", "users_saw", "steps", "assessment", "decision"]),
    }
    old = {**data, "schema": f"rollback-drill/record/{major}"}
    drills = list(data["drills"])
    for version in range(5, major, -1):
        run_keys, drill_keys = added[version]
        old = {k: v for k, v in old.items() if k not in run_keys}
        drills = [{k: v for k, v in d.items() if k not in drill_keys} for d in drills]
    return old | {"drills": drills}


def test_records_of_every_schema_are_read(tmp_path: Path) -> None:
    """Formats 1-4 lack only fields later ones added: each is migrated to format 5 on read;
    a format this version does not know is refused naming the file and the formats read."""
    five = _run("2027-02-01T12:00:00.000000Z", cadence="monthly")
    four = _older(_run("2027-01-15T12:00:00.000000Z"), 4)
    three = _older(_run("2027-01-01T12:00:00.000000Z"), 3)
    two = _older(_run("2026-12-01T12:00:00.000000Z"), 2)
    one = _older(_run("2026-10-01T12:00:00.000000Z"), 1)
    assert "cadence" not in two and "drill" not in one["drills"][0]
    assert "source" not in four and "test_seconds" not in four["drills"][0]
    other = _run("2026-09-01T12:00:00.000000Z") | {"schema": "rollback-drill/record/9"}
    found, problems = record.load_all(_write(tmp_path, five, four, three, two, one, other))
    assert [d.started_utc[:10] for _, d in found] == [
        "2026-10-01", "2026-12-01", "2027-01-01", "2027-01-15", "2027-02-01"
    ]  # fmt: skip
    assert all(d.format == drillrecord.FORMAT for _, d in found)
    assert found[0][1].drills[0].name == "emergency", "format 1 has no drill name: the procedure"
    assert found[2][1].drills[0].environment == "production"
    assert found[3][1].source.commit is None and found[3][1].shard is None
    assert found[3][1].drills[0].test_seconds is None
    (problem,) = problems
    assert "005-" in problem and "found 'rollback-drill/record/9'" in problem
    assert "expected 'rollback-drill/record/5'" in problem
    text = history.render(tmp_path, cadences=load_stack(STACK).spec.cadences, now=NOW)
    assert "5 drill(s) from 5 run record(s)" in text
    assert "monthly    every  31 days: last passed 2027-02-01" in text
