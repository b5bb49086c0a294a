"""The JSON schemas of the files the tool writes, generated from their pydantic models.

The models are the truth; the schema files under `rollback_drill/evidence/schemas/` are for
readers outside Python (auditors' tools, CI jobs). `scripts/write-schemas.py` writes them, and
`tests/test_schemas.py` fails when a committed file differs from what its model generates, so
the two cannot drift apart as the four hand-kept record schemas once could.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rollback_drill.files import drillartifacts, drillrecord, perfbaseline, storebackup

DIRECTORY = Path(__file__).resolve().parent / "schemas"

#: file name -> the model's schema
GENERATED: dict[str, Callable[[], dict[str, Any]]] = {
    "record-5.schema.json": drillrecord.schema,
    "performance-2.schema.json": perfbaseline.schema,
    "mongo-archive-3.schema.json": storebackup.mongo_schema,
    "redis-archive-1.schema.json": storebackup.redis_schema,
    "interrupted-drill-1.schema.json": drillartifacts.InterruptedDrill.model_json_schema,
}


def render(name: str) -> str:
    """The schema file's text as its model generates it."""
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **GENERATED[name]()}
    return json.dumps(schema, indent=2, sort_keys=False) + "\n"


def write_all(directory: Path = DIRECTORY) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name in GENERATED:
        path = directory / name
        path.write_text(render(name), encoding="utf-8")
        written.append(path)
    return written


__all__ = ["DIRECTORY", "GENERATED", "render", "write_all"]
