"""`rollback-drill certify --from X --to Y`: run the drills that certify rolling back from
release X to release Y, and issue a short certificate a release manager can sign off on.

The certificate is derived from the run's drill record (and cites the record's sha256), so
it states nothing the record does not. The exit status is the gate: 0 only when every drill
ran, passed and recovered within its decision-matrix budget; CI reads it, or the JUnit XML.

This module chooses and runs the drills for the release pair (pytest with `--from-release`,
`--to-release` and the environment, or the merged shards of a run spread over machines);
the certificate is written by `programme.certificate`, judged by `programme.certverdict`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from rollback_drill.evidence import record
from rollback_drill.files.spec import PRODUCTION, load_stack
from rollback_drill.process import places
from rollback_drill.programme.certificate import Issued, Paths, issue


def run(
    *,
    bad: str,
    good: str,
    stack: Path,
    backend: str,
    reports: Path,
    seed_users: int | None = None,
    pytest_args: list[str] | None = None,
    environment: str = PRODUCTION,
) -> Issued:
    """Run the drills for this release pair (pytest in this process) and issue the
    certificate; in another environment than production (staging first, as teams do), the
    drills run on its profile and the certificate says so."""
    import pytest

    loaded = load_stack(stack)
    loaded.release(bad)
    loaded.release(good)
    loaded.in_environment(environment)
    issued = datetime.now(UTC)
    where = "" if environment == PRODUCTION else f"-{environment}"
    paths = Paths(reports, f"{bad}-to-{good}{where}-{issued:%Y%m%dT%H%M%SZ}")
    paths.work.mkdir(parents=True, exist_ok=True)
    run_id = record.new_run_id()
    args = [
        str(places.shipped("drills")),
        "-m",
        "drill",
        "-p",
        "no:cacheprovider",
        "--alluredir",
        str(paths.alluredir),
        "--junitxml",
        str(paths.junit),
        "--stack-file",
        str(stack),
        "--stack-backend",
        backend,
        "--from-release",
        bad,
        "--to-release",
        good,
        "--drill-records",
        str(paths.records),
        "--drill-artifacts",
        str(paths.artifacts),
        "--drill-run-id",
        run_id,
        "--drill-invocation",
        "certify",
        "--environment",
        environment,
    ]
    if seed_users:
        args += ["--seed-users", str(seed_users)]
    exit_status = int(pytest.main(args + (pytest_args or [])))
    return issue(
        bad=bad,
        good=good,
        stack=stack,
        paths=paths,
        run_id=run_id,
        exit_status=exit_status,
        issued=issued,
        environment=environment,
    )


def from_shards(
    *,
    bad: str,
    good: str,
    stack: Path,
    reports: Path,
    shards: list[Path],
    environment: str = PRODUCTION,
) -> Issued:
    """The certificate of a run spread over machines: the shards' folders (each from `run
    --shard K/N -- --from-release X --to-release Y`) merged into one record under `reports`
    (refused as `merge.merge` says), then judged and issued exactly as `run` does."""
    from rollback_drill.programme import merge

    load_stack(stack).in_environment(environment)
    issued = datetime.now(UTC)
    where = "" if environment == PRODUCTION else f"-{environment}"
    paths = Paths(reports, f"{bad}-to-{good}{where}-{issued:%Y%m%dT%H%M%SZ}")
    dest = merge.Destination(
        paths.records, paths.alluredir, paths.artifacts, reports / "history" / "history.jsonl",
        reports / "incidents",
    )  # fmt: skip
    merged = merge.merge(shards, dest)
    return issue(
        bad=bad,
        good=good,
        stack=stack,
        paths=paths,
        run_id=merged.data.run_id,
        exit_status=merged.data.pytest_exit_status,
        issued=issued,
        environment=environment,
    )


__all__ = ["from_shards", "run"]
