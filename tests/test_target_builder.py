"""One Target builder (issue 21): every Target - from a target file, a running stack of either
backend, the compose reference stack - is made by `Target.build`, which sets every field, so a
new field cannot be forgotten by one path; and the two paths that read a stack file read its
settings the same way (the compose path once left the integrity collections at a default)."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

from rollback_drill.files.spec import LoadedStack
from rollback_drill.plugin.compose import prepare_reference, reference_target
from rollback_drill.process.secrets import Secret
from rollback_drill.stack.local import LocalStack
from rollback_drill.stack.target import Target
from rollback_drill.stack.targetparts import Deployed, Settings
from tests.paths import PROJECT_ROOT

SOURCES = ["rollback_drill", "tests", "benchmarks", "drills", "verifications"]


def _target_calls(path: Path) -> list[int]:
    """Lines where `path` calls `Target(...)` (or `x.Target(...)`) itself."""
    tree = ast.parse(path.read_text())
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and (
            (isinstance(node.func, ast.Name) and node.func.id == "Target")
            or (isinstance(node.func, ast.Attribute) and node.func.attr == "Target")
        )
    ]


def test_no_target_is_made_but_by_the_builder() -> None:
    found = [
        f"{path.relative_to(PROJECT_ROOT)}:{line}"
        for folder in SOURCES
        for path in sorted((PROJECT_ROOT / folder).rglob("*.py"))
        for line in _target_calls(path)
    ]
    assert found == [], "make Targets with Target.build, not Target(...): " + ", ".join(found)


def test_a_target_field_has_no_default_so_the_builder_must_set_it() -> None:
    defaulted = [
        f.name
        for f in dataclasses.fields(Target)
        if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
    ]
    assert defaulted == []


@pytest.fixture
def local_stack_not_started(stack_file: LoadedStack, tmp_path: Path) -> LocalStack:
    return LocalStack(stack_file, workdir=tmp_path / "local")


def test_both_stack_paths_take_the_stack_files_settings_alike(
    stack_file: LoadedStack, tmp_path: Path, local_stack_not_started: LocalStack
) -> None:
    """The compose reference target and a backend's target of the same stack file say the
    same of everything the stack file settles (the compose path once named only `users` for
    integrity while the stack file names `users, sessions`)."""
    prep = prepare_reference(stack_file, tmp_path / "compose", "1.4.0")
    version = stack_file.release("1.4.0").contract_version
    composed = reference_target(
        stack_file, prep, Secret("unused"), Deployed(contract_version=version)
    )
    local = local_stack_not_started.target()
    stack_says = {f.name: getattr(local, f.name) for f in dataclasses.fields(Settings)}
    assert {name: getattr(composed, name) for name in stack_says} == stack_says
    assert composed.integrity_collections == tuple(
        stack_file.spec.stores.mongodb.integrity_collections
    )
    assert composed.contract_artifact == stack_file.contract_artifact(version)
