"""`rollback-drill report --merge DIR...` (and `certify --merge`): the shards of one run
(`run --shard K/N` on N machines, each leaving a reports folder) made into one run's
evidence - one drill record, one Allure results folder, one history, one HTML report.

Refused, with every reason at once, unless the shards provably are one run: each folder holds
a shard record whose sha256 sidecar checks, all name the same commit and the same stack file
bytes, the same plan (its digest: the same tests collected, the same durations), and shards
1..N appear exactly once. A merge of other runs' shards would certify what never ran together.

The merged record (format 5, `files.drillrecord.RunRecord`) lists the drills in the unsharded
run's collection order, says which shard records it came from (`merged_from`, with their
sha256), and recounts the summary as one run would; a shard that ran no test (exit 5) counts
as exit 0 when its plan gave it nothing. Each drill's artifacts are copied beside the merged
record and its path rewritten.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rollback_drill.evidence import record
from rollback_drill.files.drillrecord import DrillRecord, MergedShard, RunRecord, ShardPart
from rollback_drill.process import places
from rollback_drill.process.errors import EvidenceError


class MergeRefused(EvidenceError, ValueError):
    """The folders are not the shards of one run; the message lists every reason."""


@dataclass(frozen=True)
class ShardRun:
    folder: Path  # a shard's reports folder (records/, allure-results/, artifacts/, history/)
    record_path: Path
    data: RunRecord

    @property
    def shard(self) -> ShardPart:
        assert self.data.shard is not None  # find_shard keeps only shard records
        return self.data.shard


@dataclass(frozen=True)
class Destination:
    """Where the merged run's evidence goes (a reports folder's layout by default)."""

    records: Path
    results: Path
    artifacts: Path
    history: Path  # history.jsonl
    incidents: Path

    @classmethod
    def under(cls, reports: Path, results: Path | None = None) -> Destination:
        return cls(
            reports / "records",
            results or reports / "allure-results",
            reports / "artifacts",
            reports / "history" / "history.jsonl",
            reports / "incidents",
        )


@dataclass(frozen=True)
class Merged:
    record: record.WrittenRecord
    data: RunRecord
    shards: tuple[ShardRun, ...]
    incidents_missing: str | None = None  # why the incident documents were not written


def find_shard(folder: Path) -> ShardRun:
    """The newest shard record in `folder`/records (an older cached history may sit beside)."""
    records, problems = record.load_all(folder / "records")
    shards = [(p, d) for p, d in records if d.shard is not None]
    if not shards:
        skipped = "".join(f"; skipped {p}" for p in problems)
        raise MergeRefused(
            f"{folder}: no shard record in {folder / 'records'} (expected one written by "
            "`rollback-drill run --shard K/N --reports-dir " + str(folder) + f"`){skipped}"
        )
    path, data = shards[-1]
    return ShardRun(folder, path, data)


def _same(shards: Sequence[ShardRun], what: str, value: Any, problems: list[str]) -> None:
    """Every shard has the same `value(shard)`; else one line naming each shard's."""
    seen = {s.folder: value(s) for s in shards}
    if None in seen.values():
        missing = [str(f) for f, v in seen.items() if v is None]
        problems.append(f"no {what} in the record of {', '.join(missing)}: cannot show the "
                        "shards are one run")  # fmt: skip
    elif len(set(map(json.dumps, seen.values()))) > 1:
        problems.append(f"different {what}: " + "; ".join(f"{f}: {v}" for f, v in seen.items()))


def check(shards: Sequence[ShardRun]) -> None:
    """Raise MergeRefused unless the shards are one run (see the module docstring)."""
    problems: list[str] = []
    for s in shards:
        if not record.verify_sidecar(s.record_path):
            problems.append(f"{s.record_path}: does not match its sha256 sidecar")
    _same(shards, "commit", lambda s: s.data.source.commit, problems)
    _same(
        shards,
        "stack file (sha256)",
        lambda s: s.data.source.stack_file and s.data.source.stack_file.sha256,
        problems,
    )
    _same(shards, "shard count", lambda s: s.shard.count, problems)
    _same(shards, "shard plan (sha256)", lambda s: s.shard.plan_sha256, problems)
    _same(shards, "cadence", lambda s: s.data.cadence or "-", problems)
    if not problems:
        count = shards[0].shard.count
        indexes = sorted(s.shard.index for s in shards)
        if indexes != list(range(1, count + 1)):
            problems.append(f"shards {indexes} given, the plan has 1..{count}: each exactly once")
        ran = sorted(t for s in shards for t in s.shard.tests)
        if ran != sorted(shards[0].shard.collected):
            problems.append("the shards' tests are not exactly the plan's collected tests")
    if problems:
        raise MergeRefused("not the shards of one run:\n  " + "\n  ".join(problems))


def _exit_status(s: ShardRun) -> int:
    code = s.data.pytest_exit_status
    return 0 if code == 5 and not s.shard.tests else code


def _artifacts(drill: DrillRecord, folder: Path, into: Path) -> DrillRecord:
    """The drill's artifacts copied from the shard's folder (found by name: the path was the
    shard machine's); the path rewritten to the copy. Left as it was when not found."""
    name = Path(drill.artifacts).name
    found = folder / "artifacts" / name
    if not name or not found.is_dir():
        return drill
    into.mkdir(parents=True, exist_ok=True)
    shutil.copytree(found, into / name, dirs_exist_ok=True)
    return drill.model_copy(update={"artifacts": places.shown(into / name)})


def merged_record(shards: Sequence[ShardRun], dest: Destination, args: Sequence[str]) -> RunRecord:
    order = {t: i for i, t in enumerate(shards[0].shard.collected)}
    drills = sorted(
        (_artifacts(d, s.folder, dest.artifacts) for s in shards for d in s.data.drills),
        key=lambda d: (order.get(d.test, len(order)), d.test),
    )
    exit_status = next((c for c in map(_exit_status, shards) if c != 0), 0)
    first = min(shards, key=lambda s: s.shard.index).data
    return first.model_copy(  # shard 1's environment; each machine in merged_from
        update={
            "run_id": record.new_run_id(),
            "started_utc": min(s.data.started_utc for s in shards),
            "finished_utc": max(s.data.finished_utc for s in shards),
            "invocation": first.invocation.model_copy(
                update={"command": "merge", "args": [str(a) for a in args]}
            ),
            "pytest_exit_status": exit_status,
            "summary": record.summary(drills, exit_status),
            "shard": None,
            "merged_from": [
                MergedShard(
                    run_id=s.data.run_id,
                    record=places.shown(s.record_path),
                    sha256=record.file_sha256(s.record_path),
                    shard=s.shard.index,
                    hostname=s.data.environment.machine.hostname,
                    pytest_exit_status=s.data.pytest_exit_status,
                )
                for s in sorted(shards, key=lambda s: s.shard.index)
            ],
            "drills": drills,
        }
    )


def _results(shards: Sequence[ShardRun], into: Path) -> int:
    """Every shard's Allure result files in one folder (their names are fresh uuids; the
    run-wide files - environment, executor, categories - are taken from the first shard)."""
    from rollback_drill.evidence import report_html

    report_html.clean_results(into)
    into.mkdir(parents=True, exist_ok=True)
    copied = 0
    for s in sorted(shards, key=lambda s: s.shard.index):
        results = s.folder / "allure-results"
        for path in sorted(results.iterdir()) if results.is_dir() else []:
            if path.is_file() and not (into / path.name).exists():
                shutil.copy2(path, into / path.name)
                copied += 1
    return copied


def _history(shards: Sequence[ShardRun], into: Path) -> int:
    """The union of the shards' Allure histories (the lines of past runs, once each, oldest
    first), without the line a shard appended for its own partial results: the merged
    report appends the one line for the whole run."""
    from rollback_drill.evidence import report_html

    lines: dict[str, dict[str, Any]] = {}
    own: set[str] = set()
    for path in [into, *(s.folder / "history" / "history.jsonl" for s in shards)]:
        if path != into:
            ledger = report_html.ledger(path)
            appended = ledger.get(report_html.results_key(path.parent.parent / "allure-results"))
            own.update([appended] if appended else [])
        for text in path.read_text().splitlines() if path.exists() else []:
            if text.strip():
                line = json.loads(text)
                lines.setdefault(str(line.get("uuid")), line)
    kept = sorted(
        (v for k, v in lines.items() if k not in own), key=lambda v: v.get("timestamp") or 0
    )
    into.parent.mkdir(parents=True, exist_ok=True)
    into.write_text("".join(json.dumps(v) + "\n" for v in kept))
    return len(kept)


def merge(folders: Sequence[Path], dest: Destination, args: Sequence[str] = ()) -> Merged:
    """Check the shards, then write the merged record (with its sidecar and incident
    documents), the merged Allure results and the merged history. The HTML report is the
    caller's next step (`report_html.generate_html` over `dest.results`)."""
    resolved = [f.resolve() for f in folders]
    if len(set(resolved)) != len(resolved):
        raise MergeRefused("the same shard folder is given twice")
    if dest.records.resolve().parent in resolved:
        raise MergeRefused("the merged run must go to another folder than its shards'")
    shards = tuple(find_shard(f) for f in folders)
    check(shards)
    data = merged_record(shards, dest, args or [str(f) for f in folders])
    written = record.write(data, dest.records)
    from rollback_drill.evidence import incident

    missing = None
    try:  # as after a run: the record stands, and says loudly that its documents are missing
        incident.write_all(data, written.path, dest.incidents)
    except Exception as exc:
        missing = f"{type(exc).__name__}: {exc}"
    _results(shards, dest.results)
    _history(shards, dest.history)
    return Merged(written, data, shards, missing)


__all__ = ["Destination", "MergeRefused", "Merged", "ShardRun", "check", "find_shard", "merge"]
