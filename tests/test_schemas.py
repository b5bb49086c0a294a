"""The committed JSON schemas are the ones the models generate (no stack, milliseconds)."""

from __future__ import annotations

import json

import pytest

from rollback_drill.evidence import schemafiles
from tests import records


@pytest.mark.parametrize("name", sorted(schemafiles.GENERATED))
def test_committed_schema_is_the_generated_one(name: str) -> None:
    committed = schemafiles.DIRECTORY / name
    assert committed.is_file(), f"{committed} missing: run scripts/write-schemas.py"
    assert committed.read_text(encoding="utf-8") == schemafiles.render(name), (
        f"{committed} differs from its model: run scripts/write-schemas.py"
    )


def test_no_hand_kept_schema_is_left() -> None:
    kept = {p.name for p in schemafiles.DIRECTORY.glob("*.json")}
    assert kept == set(schemafiles.GENERATED)


def test_the_generated_record_schema_takes_what_the_model_writes() -> None:
    """Readers outside Python validate records with the generated schema (jsonschema is a dev
    dependency only: the tool itself reads records through the model)."""
    import jsonschema

    schema = json.loads((schemafiles.DIRECTORY / "record-5.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    data = records.run_model(records.drill(), records.drill(outcome="failed")).to_json()
    validator.validate(data)
    broken = {**data, "drills": [{**data["drills"][0], "outcome": "recovered"}]}
    assert not validator.is_valid(broken)
    assert not validator.is_valid({**data, "schema": "rollback-drill/record/3"})
