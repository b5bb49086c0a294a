"""Bad stack and target files get errors naming the file, the field and what was expected."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from rollback_drill.spec import SpecError, load_stack, load_target
from rollback_drill.tools import PROJECT_ROOT

SAFEPSY = PROJECT_ROOT / "fixtures" / "safepsy"


@pytest.fixture
def stack_copy(tmp_path: Path) -> Path:
    dest = tmp_path / "safepsy"
    shutil.copytree(SAFEPSY, dest, ignore=shutil.ignore_patterns("__pycache__", "node_modules"))
    return dest / "stack.yaml"


def _edit(path: Path, change: dict[str, object]) -> None:
    data = yaml.safe_load(path.read_text())
    for dotted, value in change.items():
        node = data
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node[key]
        if value is None:
            del node[leaf]
        else:
            node[leaf] = value
    path.write_text(yaml.safe_dump(data))


def test_reference_stack_file_loads() -> None:
    loaded = load_stack(SAFEPSY / "stack.yaml")
    assert {"1.4.0", "1.5.0"} <= set(loaded.releases)
    assert loaded.release("1.5.0").previous == "1.4.0"
    assert loaded.budget("critical").budget_s == 300


@pytest.mark.parametrize(
    ("change", "field", "expected"),
    [
        ({"services.backend.port": "three thousand"}, "services.backend.port", "valid integer"),
        ({"services.backend.port": 70000}, "services.backend.port", "less than or equal to 65535"),
        ({"services.backend.kind": "lambda"}, "services.backend.kind", "'app' or 'nginx'"),
        ({"chain": None}, "chain", "Field required"),
        ({"decision_matrix": []}, "decision_matrix", "at least 1 item"),
        (
            {"services.backend.colour": "blue"},
            "services.backend.colour",
            "Extra inputs are not permitted",
        ),
        (
            {"thresholds.error_rate_critical": 5},
            "thresholds.error_rate_critical",
            "less than or equal to 1",
        ),
        (
            {"services.frontend.upstreams": {"backend": "api"}},
            "upstreams.backend",
            "unknown service 'api'",
        ),
    ],
)
def test_broken_stack_file_names_file_field_and_expectation(
    stack_copy: Path, change: dict[str, object], field: str, expected: str
) -> None:
    _edit(stack_copy, change)
    with pytest.raises(SpecError) as err:
        load_stack(stack_copy)
    message = str(err.value)
    assert str(stack_copy.resolve()) in message or str(stack_copy) in message
    assert field in message
    assert expected in message


def test_release_file_errors_name_the_release_file(stack_copy: Path) -> None:
    release = stack_copy.parent / "releases" / "1.5.0.yaml"
    release.write_text(release.read_text().replace("contract_version", "contract_verison"))
    with pytest.raises(SpecError) as err:
        load_stack(stack_copy)
    assert "1.5.0.yaml" in str(err.value)
    assert "contract_version" in str(err.value)


def test_missing_referenced_file_is_named(stack_copy: Path) -> None:
    _edit(stack_copy, {"chain.contract_artifact": "contracts/build/Nope.json"})
    with pytest.raises(SpecError, match=r"chain\.contract_artifact: expected an existing path"):
        load_stack(stack_copy)


def test_invalid_yaml_reports_line(tmp_path: Path) -> None:
    bad = tmp_path / "stack.yaml"
    bad.write_text("name: x\nservices: [\n")
    with pytest.raises(SpecError, match=r"stack.yaml: line \d+, column \d+"):
        load_stack(bad)


def test_target_needs_a_password_source(tmp_path: Path) -> None:
    target = tmp_path / "target.yaml"
    target.write_text(
        yaml.safe_dump(
            {
                "services": {
                    "backend": "http://127.0.0.1:1",
                    "ai-chatbot": "http://127.0.0.1:2",
                    "frontend": "http://127.0.0.1:3",
                },
                "mongodb_uri": "mongodb://127.0.0.1:4",
                "redis_url": "redis://127.0.0.1:5",
                "test_account": {"email": "a@b.c"},
            }
        )
    )
    with pytest.raises(SpecError, match=r"test_account: give `password_env`"):
        load_target(target)


def test_target_missing_file() -> None:
    with pytest.raises(SpecError, match=r"nope.yaml: file not found"):
        load_target(Path("/nonexistent/nope.yaml"))
