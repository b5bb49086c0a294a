"""One run spread over machines, one report: `rollback-drill run --shard K/N` on N=2 shard
processes on this machine (each its own reports folder, as N CI machines have), then
`rollback-drill report --merge` and `certify --merge` - checked against one unsharded run of
the same selection (two service drills): the same drills, the same verdicts, the same
certificate. Shards that are not one run (another commit, another stack file, a shard missing
or given twice, a record edited after it was written) are refused, naming why.

The plan itself (who runs what) is pure and tested without a stack: stable, complete,
balanced by the durations the records hold."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from rollback_drill.evidence import record
from rollback_drill.files.drillrecord import RunRecord
from rollback_drill.plugin import shard
from tests import records
from tests.paths import PROJECT_ROOT

CLI_TIMEOUT_S = 600
# Two drills of the matrix's critical row whose defects are not CPU-bound (a backend that
# cannot start, session cache entries the previous release cannot read). What this file tests
# is the sharding, not the drills: a critical drill cannot be classified above its row by a
# response-time rise the machine's other work causes (CI misjudged the medium backend drill
# "critical" on DID health +589 % with other work taking 80 % of the machine).
SELECTION = [
    "-k", "(test_emergency_rollback and service_down) or test_redis_rollback",
    "-p", "no:cacheprovider",
]  # fmt: skip


# -- the plan, without a stack ------------------------------------------------------------------


def test_the_plan_puts_every_test_in_exactly_one_shard_the_same_way_each_time() -> None:
    tests = [f"drills/test_x.py::test_x[local-d{i}]" for i in range(7)]
    first = shard.plan(tests, 3, {})
    assert sorted(t for k in (1, 2, 3) for t in first.tests(k)) == sorted(tests)
    assert [len(first.tests(k)) for k in (1, 2, 3)] == [3, 2, 2]  # by count without history
    again = shard.plan(list(tests), 3, {})
    assert again.assignment == first.assignment and again.digest == first.digest
    assert shard.plan(tests, 2, {}).digest != first.digest


def test_the_plan_balances_by_recorded_durations(tmp_path: Path) -> None:
    tests = ["t::slow", "t::a", "t::b", "t::c", "t::new"]
    data = records.run(
        records.drill(test="t::slow", test_seconds=90.0),
        *(records.drill(test=f"t::{t}", test_seconds=30.0) for t in "abc"),
    )
    (tmp_path / "20261206T200000Z-abc.json").write_text(json.dumps(data))
    durations = record.durations(tmp_path)
    assert durations == {"t::slow": 90.0, "t::a": 30.0, "t::b": 30.0, "t::c": 30.0}
    made = shard.plan(tests, 2, durations)
    # the slow drill and one short one on one machine, three short ones (the unknown weighed
    # as the median, 30 s) on the other: 120 s against 90 s, where a split by count can give
    # 150 against 60
    slow = made.assignment["t::slow"]
    assert len(made.tests(slow)) == 2 and len(made.tests(3 - slow)) == 3
    assert sorted([made.load_s(1), made.load_s(2)]) == [90.0, 120.0]
    assert made.balanced_by == "recorded durations of 4 of 5 tests"


def _shard_folder(base: Path, k: int, collected: list[str], commit: str = "c" * 40) -> Path:
    """A shard's reports folder holding its record, as `run --shard K/2` leaves it."""
    test = collected[k - 1]
    part = {"index": k, "count": 2, "plan_sha256": "p" * 64, "balanced_by": "count",
            "planned_s": 1.0, "collected": collected, "tests": [test]}  # fmt: skip
    data = records.run(records.drill(test=test), run_id=f"shard{k}", shard=part)
    data["source"]["commit"] = commit
    record.write(RunRecord.model_validate(data), base / f"shard-{k}" / "records")
    return base / f"shard-{k}"


def test_two_shard_records_merge_into_one_run_record_through_the_model(tmp_path: Path) -> None:
    """The merge without a stack: the merged record is a format-5 model that reads back as
    written, drills in collection order, its shards named; another commit is refused."""
    from rollback_drill.programme import merge

    collected = ["t::b", "t::a"]
    shards = [_shard_folder(tmp_path, k, collected) for k in (2, 1)]
    merged = merge.merge(shards, merge.Destination.under(tmp_path / "merged"))
    assert [d.test for d in merged.data.drills] == collected
    assert merged.data.shard is None and merged.data.invocation.command == "merge"
    assert [(m.shard, m.run_id) for m in merged.data.merged_from or []] == [
        (1, "shard1"), (2, "shard2")
    ]  # fmt: skip
    assert merged.data.summary.drills == 2 and merged.data.summary.verdict == "pass"
    assert record.read(merged.record.path) == merged.data
    other = _shard_folder(tmp_path / "other", 2, collected, commit="0" * 40)
    with pytest.raises(merge.MergeRefused, match="different commit"):
        merge.merge([shards[1], other], merge.Destination.under(tmp_path / "refused"))


@pytest.mark.parametrize("text", ["0/2", "3/2", "1", "a/b", "1/0", "-1/2"])
def test_a_bad_shard_is_one_clear_error(text: str) -> None:
    with pytest.raises(pytest.UsageError, match=r"--shard: expected K/N with 1 <= K <= N"):
        shard.parse(text)


# -- two shard processes, a merge, one unsharded run --------------------------------------------


@dataclass(frozen=True)
class Runs:
    base: Path
    shards: tuple[Path, Path]
    shard_runs: tuple[subprocess.CompletedProcess[str], ...]
    whole: Path
    whole_run: subprocess.CompletedProcess[str]
    merged: Path
    merge_run: subprocess.CompletedProcess[str]


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "rollback_drill.cli", *args]


def _start(argv: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        argv, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL, text=True,
    )  # fmt: skip


def _finish(child: subprocess.Popen[str]) -> subprocess.CompletedProcess[str]:
    try:
        out, err = child.communicate(timeout=CLI_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        child.terminate()  # SIGTERM: the plugin tears the stacks down as on Ctrl-C
        out, err = child.communicate(timeout=60)
    return subprocess.CompletedProcess(child.args, child.returncode, out, err)


def _explain(done: subprocess.CompletedProcess[str]) -> str:
    return f"exit {done.returncode}\n{done.stdout[-4000:]}\n{done.stderr[-3000:]}"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    base = tmp_path_factory.mktemp("shards")
    one, two, whole, merged = base / "shard-1", base / "shard-2", base / "whole", base / "merged"
    run = ["run", "--backend", "local", "--no-html"]
    children = [
        _start(_cli(*run, "--reports-dir", str(d), "--shard", f"{k}/2", "--", *SELECTION))
        for k, d in ((1, one), (2, two))
    ]  # the two shards at once, as two machines would run them
    shard_runs = tuple(_finish(c) for c in children)
    # then the unsharded run: beside the shards it made three drills at once on two cores,
    # beside the suite's other worker, and CI saw a healthy 1.4.0 "not green within 30 s"
    # (login +125 %, signed-in page +294 %) in one run and not in the other
    whole_run = _finish(_start(_cli(*run, "--reports-dir", str(whole), "--", *SELECTION)))
    merge_run = subprocess.run(
        _cli("report", "--reports-dir", str(merged), "--merge", str(one), str(two)),
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=CLI_TIMEOUT_S, check=False,
    )  # fmt: skip
    yield Runs(base, (one, two), shard_runs, whole, whole_run, merged, merge_run)


def _record(reports: Path) -> tuple[Path, RunRecord]:
    found, problems = record.load_all(reports / "records")
    assert not problems and len(found) == 1, (found, problems)
    return found[0]


def _deselected(done: subprocess.CompletedProcess[str]) -> int:
    found = re.search(r"(\d+) deselected", done.stdout)
    return int(found.group(1)) if found else 0


def _verdicts(data: RunRecord) -> list[tuple[Any, ...]]:
    return [
        (d.test, d.drill, d.bad_release, d.good_release, d.outcome, d.test_outcome,
         d.within_budget, d.failed_checks)
        for d in data.drills
    ]  # fmt: skip


@pytest.mark.slow
def test_each_shard_runs_only_its_share_and_says_what_it_deselected(runs: Runs) -> None:
    for done in (*runs.shard_runs, runs.whole_run):
        assert done.returncode == 0, _explain(done)
    parts = [_record(d)[1] for d in runs.shards]
    by_k = _deselected(runs.whole_run)  # the rest of drills/, deselected by -k
    for k, (part, done) in enumerate(zip(parts, runs.shard_runs, strict=True), start=1):
        info = part.shard
        assert info is not None
        assert (info.index, info.count) == (k, 2)
        assert [d.test for d in part.drills] == info.tests
        assert len(info.tests) == 1, info  # two drills, by count: one each
        assert _deselected(done) == by_k + 1, _explain(done)  # and the other shard's drill
        assert f"shard {k}/2: 1 of 2 tests" in done.stdout, _explain(done)
        assert part.source.commit == record.commit()
        assert all(d.test_seconds and d.test_seconds > 0 for d in part.drills)
    one, two = (p.shard for p in parts)
    assert one is not None and two is not None and one.plan_sha256 == two.plan_sha256
    whole = _record(runs.whole)[1]
    assert sorted(one.collected) == sorted(d.test for d in whole.drills)


@pytest.mark.slow
def test_the_merge_has_the_drills_and_verdicts_of_one_unsharded_run(runs: Runs) -> None:
    assert runs.merge_run.returncode == 0, _explain(runs.merge_run)
    path, merged = _record(runs.merged)
    _, whole = _record(runs.whole)
    assert record.verify_sidecar(path)  # and read back through the model by _record
    assert _verdicts(merged) == _verdicts(whole)
    assert merged.summary == whole.summary
    assert merged.pytest_exit_status == whole.pytest_exit_status == 0
    assert merged.source == whole.source
    sources = [_record(d)[0] for d in runs.shards]
    assert [(m.shard, m.sha256) for m in merged.merged_from or []] == [
        (k, record.file_sha256(p)) for k, p in enumerate(sources, start=1)
    ]
    for d in merged.drills:  # each drill's artifacts copied beside the merged record
        assert (PROJECT_ROOT / d.artifacts / "drill.json").exists(), d.artifacts
    # one Allure results folder with both shards' results, one HTML report over it
    shard_results = [
        p.name for d in runs.shards for p in (d / "allure-results").glob("*-result.json")
    ]
    merged_results = [p.name for p in (runs.merged / "allure-results").glob("*-result.json")]
    assert sorted(merged_results) == sorted(shard_results) and len(merged_results) == 2
    assert (runs.merged / "html" / "index.html").stat().st_size > 0
    assert len((runs.merged / "history" / "history.jsonl").read_text().splitlines()) == 1


@pytest.mark.slow
def test_a_certificate_from_the_shards_says_what_one_from_the_unsharded_run_says(
    runs: Runs,
) -> None:
    from rollback_drill.programme import certverdict

    reports = runs.base / "certified"
    done = subprocess.run(
        _cli("certify", "--from", "1.5.0", "--to", "1.4.0", "--reports-dir", str(reports),
             "--merge", *map(str, runs.shards)),
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=CLI_TIMEOUT_S, check=False,
    )  # fmt: skip
    # the selection also ran the 1.11.0 drill: not a certificate of 1.5.0 -> 1.4.0, either way
    assert done.returncode == 1, _explain(done)
    path, merged = _record(reports)
    whole_path, whole = _record(runs.whole)

    def verdict(data: RunRecord, where: Path) -> certverdict.Verdict:
        return certverdict.judge(
            data, exit_status=data.pytest_exit_status, bad="1.5.0", good="1.4.0",
            sidecar_ok=record.verify_sidecar(where),
        )  # fmt: skip

    assert verdict(merged, path) == verdict(whole, whole_path)
    assert not verdict(merged, path).certified
    (certificate,) = (reports / "certificates").glob("*.md")
    text = certificate.read_text()
    assert "NOT CERTIFIED" in text and "rolled back 1.11.0 -> 1.4.0" in text, text
    assert path.name in text


def _edited_shard(source: Path, into: Path, change: dict[str, Any]) -> Path:
    """A copy of a shard's folder whose record says `change` (sidecar rewritten to match)."""
    shutil.copytree(source, into)
    path, found = _record(into)
    data = found.to_json()
    data["source"] = {**data["source"], **change}
    path.write_text(json.dumps(data, indent=2) + "\n")
    path.with_name(path.name + ".sha256").write_text(f"{record.file_sha256(path)}  {path.name}\n")
    return into


def _merge(reports: Path, *folders: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _cli("report", "--reports-dir", str(reports), "--merge", *map(str, folders)),
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=CLI_TIMEOUT_S, check=False,
    )  # fmt: skip


@pytest.mark.slow
def test_shards_of_another_commit_or_stack_file_are_refused(runs: Runs) -> None:
    one, two = runs.shards
    other = _edited_shard(
        two,
        runs.base / "other-commit",
        {"commit": "0" * 40, "stack_file": {"path": "stack.yaml", "sha256": "f" * 64}},
    )
    done = _merge(runs.base / "refused", one, other)
    assert done.returncode == 2, _explain(done)
    assert "merge refused" in done.stderr
    assert "different commit" in done.stderr and "0" * 40 in done.stderr, done.stderr
    assert "different stack file (sha256)" in done.stderr and "f" * 64 in done.stderr
    assert not (runs.base / "refused" / "records").exists()  # nothing written


@pytest.mark.slow
def test_a_missing_a_doubled_or_an_edited_shard_is_refused(runs: Runs) -> None:
    one, two = runs.shards
    missing = _merge(runs.base / "missing", one)
    assert missing.returncode == 2 and "shards [1] given, the plan has 1..2" in missing.stderr
    doubled = _merge(runs.base / "doubled", one, one)
    assert doubled.returncode == 2 and "the same shard folder is given twice" in doubled.stderr
    tampered = runs.base / "tampered"
    shutil.copytree(two, tampered)
    path, found = _record(tampered)
    data = found.to_json()  # a valid record, edited: only its sidecar can tell
    data["drills"][0]["outcome"] = (
        "failed" if data["drills"][0]["outcome"] == "passed" else "passed"
    )
    path.write_text(json.dumps(data))
    edited = _merge(runs.base / "edited", one, tampered)
    assert edited.returncode == 2 and "does not match its sha256 sidecar" in edited.stderr
