"""Reading a drill record file of any format into the format-5 model (`drillrecord`).

Formats 1-4 only lack fields 5 has, so a record of an older format is migrated on read: each
missing field gets the value that says "not measured then" (the fields a migration must fill
are the ones `drillrecord`'s models added since). Anything else is refused naming the file,
the format found and the formats read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from rollback_drill.files.drillrecord import FORMAT, RunRecord
from rollback_drill.files.specmodel import describe_errors
from rollback_drill.files.userfiles import read_json
from rollback_drill.process.errors import RecordError, SpecError

OLD_FORMATS = tuple(f"rollback-drill/record/{n}" for n in (1, 2, 3, 4))


def _migrate_drill(drill: dict[str, Any], major: int) -> dict[str, Any]:
    """A drill entry of format 1-4 with what later formats added: 'not recorded then'."""
    new = dict(drill)
    if major < 2:
        new.setdefault("drill", new.get("procedure"))
        for key, empty in (("alerts", []), ("users_saw", {}), ("steps", []), ("assessment", {})):
            new.setdefault(key, empty)
        new.setdefault("decision", None)
    if major < 3:
        new.setdefault("passed_checks", [])
        new.setdefault("data_volume", None)
        new.setdefault("communication", None)
    if major < 4:
        new.setdefault("environment", "production")
        new.setdefault("evidence", {})
    if major < 5:
        new.setdefault("test_seconds", None)
    return new


def migrate(data: dict[str, Any]) -> dict[str, Any]:
    """A record of format 1-4 as format 5: each of them only lacks fields a later one added
    (1: load, alerts, decision; 2: cadence, runbook coverage, data volume, communication;
    3: each drill's environment and evidence; 4: the source, shard, merge, test_seconds)."""
    major = int(str(data["schema"]).rsplit("/", 1)[1])
    new = {**data, "schema": FORMAT}
    if major < 3:
        new.setdefault("cadence", None)
        new.setdefault("runbook_coverage", None)
    if major < 5:
        new.setdefault("source", {"commit": None, "stack_file": None})
        new.setdefault("shard", None)
        new.setdefault("merged_from", None)
    drills = data.get("drills")
    if isinstance(drills, list):
        new["drills"] = [_migrate_drill(d, major) if isinstance(d, dict) else d for d in drills]
    return new


def parse(data: Any, source: str | Path) -> RunRecord:
    """A record from its JSON value; older formats migrated, anything else refused."""
    found = data.get("schema") if isinstance(data, dict) else type(data).__name__
    if not isinstance(data, dict) or found not in (*OLD_FORMATS, FORMAT):
        raise RecordError(
            f"{source}: schema: found {found!r}, expected {FORMAT!r} "
            f"(or an older {', '.join(OLD_FORMATS)}, migrated on read)"
        )
    if found != FORMAT:
        data = migrate(data)
    try:
        return RunRecord.model_validate(data)
    except ValidationError as exc:
        raise RecordError(describe_errors(exc, Path(source))) from None


def load(path: Path) -> RunRecord:
    """Read a record file: RecordError naming the file for anything unusable."""
    try:
        data = read_json(path, "a JSON drill record")
    except SpecError as exc:
        raise RecordError(str(exc)) from None
    return parse(data, path)


__all__ = ["OLD_FORMATS", "RecordError", "load", "migrate", "parse"]
