"""Bad stack and target files get errors naming the file, the field and what was expected."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from rollback_drill.files.spec import load_stack
from rollback_drill.files.targetspec import load_target
from rollback_drill.process.errors import SpecError
from tests.helpers import reference_target_doc
from tests.paths import PROJECT_ROOT

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
        (
            {"services.backend.start_timeout_s": 0},
            "services.backend.start_timeout_s",
            "greater than 0",
        ),
        (
            {"services.backend.start_timeout_s": "soon"},
            "services.backend.start_timeout_s",
            "valid number",
        ),
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
        ({"services.backend.port": 0}, "services.backend.port", "greater than or equal to 1"),
        ({"services.backend.port": -1}, "services.backend.port", "greater than or equal to 1"),
        ({"services.frontend.tls_port": 0}, "services.frontend.tls_port", "greater than"),
        (
            {"services.backend.health_path": "health"},
            "services.backend.health_path",
            "starting with '/'",
        ),
        ({"services.backend.command": []}, "services.backend", "needs `command`"),
        ({"services.backend.command": [""]}, "services.backend.command.0", "non-empty"),
        (
            {"services.backend.pythonpath": "nowhere"},
            "services.backend.pythonpath",
            "existing directory",
        ),
        ({"seed.command": []}, "seed.command", "at least 1 item"),
        ({"seed.pythonpath": "gone"}, "seed.pythonpath", "existing directory"),
        ({"stores.mongodb.database": ""}, "stores.mongodb.database", "empty"),
        ({"stores.mongodb.database": "safe psy"}, "stores.mongodb.database", "without ' '"),
        ({"stores.mongodb.database": "a.b"}, "stores.mongodb.database", "without '.'"),
        (
            {"stores.mongodb.integrity_collections": ["$bad"]},
            "stores.mongodb.integrity_collections.0",
            "collection name",
        ),
        ({"chain.chain_id": 0}, "chain.chain_id", "greater than or equal to 1"),
        ({"test_account.email": "nobody"}, "test_account.email", "should match pattern"),
        ({"test_account.password_env": "lower-case"}, "test_account.password_env", "pattern"),
        ({"services.frontend.upstreams": {"backend": "backend"}}, "services.frontend", "chatbot"),
        (
            {
                "decision_matrix": [
                    {"severity": s, "impact": "x", "rollback_type": "y", "budget_s": 60}
                    for s in ("critical", "high", "medium")
                ]
            },
            "decision_matrix",
            "no row for severity ['low']",
        ),
        (
            {
                "decision_matrix": [
                    {"severity": s, "impact": "x", "rollback_type": "y", "budget_s": 60}
                    for s in ("critical", "critical", "high", "medium", "low")
                ]
            },
            "decision_matrix",
            "given twice",
        ),
        (
            {
                "services.backend": None,
                "services.frontend.upstreams": {"backend": "ai-chatbot", "chatbot": "ai-chatbot"},
            },
            "services",
            "missing ['backend']",
        ),
        ({"releases": ["releases/1.4.0.yaml", "releases/9.9.9.yaml"]}, "releases.1", "not found"),
        (
            {"services.frontend.upstreams": {"backend": "api", "chatbot": "ai-chatbot"}},
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


@pytest.mark.parametrize(
    ("version", "old", "new", "expected"),
    [
        ("1.5.0", "contract_version", "contract_verison", r"(?s)1\.5\.0\.yaml: .*contract_version"),
        (
            "1.4.0",
            "previous: null",
            'previous: "1.5.0"',
            r"1\.\d\.0\.yaml: previous: .* forms a loop",
        ),
        (
            "1.4.0",
            "previous: null",
            'previous: "1.4.0"',
            r"1\.4\.0\.yaml: previous: 1\.4\.0 -> 1\.4\.0 forms a loop",
        ),
        (
            "1.5.0",
            'version: "1.5.0"',
            'version: "1.4.0"',
            r"1\.5\.0\.yaml: version: '1\.4\.0' is also the version in .*1\.4\.0\.yaml",
        ),
        ("1.5.0", 'previous: "1.4.0"', 'previous: "1.3.0"', r"previous: '1\.3\.0' is not one"),
    ],
)
def test_broken_release_file_is_named_with_its_field(
    stack_copy: Path, version: str, old: str, new: str, expected: str
) -> None:
    release = stack_copy.parent / "releases" / f"{version}.yaml"
    assert old in release.read_text()
    release.write_text(release.read_text().replace(old, new))
    with pytest.raises(SpecError, match=expected):
        load_stack(stack_copy)


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


def test_corrupt_contract_artifact(stack_copy: Path) -> None:
    artifact = stack_copy.parent / "contracts" / "build" / "1.4.0" / "DIDRegistry.json"
    artifact.write_text('{"abi": "not a list", "bytecode": "0x60"}')
    with pytest.raises(SpecError) as err:
        load_stack(stack_copy)
    assert "chain.contract_artifact" in str(err.value)
    assert "abi: expected a list" in str(err.value)
    artifact.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    with pytest.raises(SpecError, match=r"chain\.contract_artifact: .*binary file"):
        load_stack(stack_copy)


_PAIRS = [("a", "b"), ("b", "c"), ("c", "d"), ("d", "e"), ("e", "f")]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: a\nname: b\n", r"line 2, column 1: .*duplicate key 'name'.*first given on line 1"),
        (b"\x00\x01\x02binary", r"byte 0: a NUL byte - this is a binary file"),
        (b"name: caf\xe9\n", r"line 1 \(byte 9\): not UTF-8"),
        ("- a\n- b\n", r"expected a mapping at the top level, got list"),
        ("", r"expected a mapping at the top level, got NoneType"),
        ("a: " + "[" * 3000 + "]" * 3000, r"nested too deeply"),
        (
            "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
            + "".join(f"{c}: &{c} [{', '.join([f'*{p}'] * 10)}]\n" for p, c in _PAIRS),
            r"expands to more than",
        ),
    ],
)
def test_unreadable_yaml_is_one_clear_error(
    tmp_path: Path, text: str | bytes, expected: str
) -> None:
    for loader, name in ((load_stack, "stack.yaml"), (load_target, "target.yaml")):
        path = tmp_path / name
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text)
        with pytest.raises(SpecError, match=expected) as err:
            loader(path)
        assert name in str(err.value)


def test_duplicate_key_in_a_nested_mapping_names_its_line(stack_copy: Path) -> None:
    text = stack_copy.read_text().replace("    port: 3000\n", "    port: 3000\n    port: 80\n", 1)
    stack_copy.write_text(text)
    with pytest.raises(SpecError, match=r"duplicate key 'port'"):
        load_stack(stack_copy)


def _target(tmp_path: Path, **change: object) -> Path:
    doc = reference_target_doc()
    for dotted, value in change.items():
        node = doc
        *parents, leaf = dotted.split("__")
        for key in parents:
            node = node[key]  # type: ignore[assignment]
        node[leaf] = value
    path = tmp_path / "target.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_reference_shaped_target_loads(tmp_path: Path) -> None:
    assert load_target(_target(tmp_path)).services.backend == "http://127.0.0.1:3000"


@pytest.mark.parametrize(
    ("change", "field", "expected"),
    [
        ({"services__backend": "127.0.0.1:3000"}, "services.backend", "http:// or https://"),
        ({"services__backend": "api.example.com"}, "services.backend", "no scheme"),
        ({"services__frontend_tls": "http://localhost:8443"}, "services.frontend_tls", "https://"),
        ({"services__frontend": "ftp://x"}, "services.frontend", "scheme ftp://"),
        ({"services__backend": "http://127.0.0.1:0"}, "services.backend", "port from 1 to"),
        ({"services__backend": "http://127.0.0.1:99999"}, "services.backend", "out of range"),
        ({"services__backend": "http://:3000"}, "services.backend", "with a host"),
        ({"mongodb_uri": "http://127.0.0.1:27017"}, "mongodb_uri", "mongodb://"),
        ({"redis_url": "localhost:6379"}, "redis_url", "redis:// or rediss://"),
        ({"rpc_url": "ws://127.0.0.1:8545"}, "rpc_url", "http:// or https://"),
        ({"mongodb_database": ""}, "mongodb_database", "empty"),
        ({"mongodb_database": "safe/psy"}, "mongodb_database", "without '/'"),
        ({"chain_id": -1}, "chain_id", "greater than or equal to 1"),
        ({"contract_artifact": "nope.json"}, "contract_artifact", "not found"),
        ({"integrity__collections": []}, "integrity.collections", "at least 1 item"),
        ({"test_account__email": "x"}, "test_account.email", "pattern"),
        ({"mongodb_uri_env": "not a var"}, "mongodb_uri_env", "pattern"),
        ({"registry_address": "0x123"}, "registry_address", "pattern"),
    ],
)
def test_every_target_field_is_checked_at_load(
    tmp_path: Path, change: dict[str, object], field: str, expected: str
) -> None:
    with pytest.raises(SpecError) as err:
        load_target(_target(tmp_path, **change))
    message = str(err.value)
    assert "target.yaml" in message
    assert f"{field}:" in message, message
    assert expected in message, message


def test_target_with_a_corrupt_contract_artifact(tmp_path: Path) -> None:
    (tmp_path / "artifact.json").write_text("{not json")
    with pytest.raises(SpecError, match=r"contract_artifact: .*not valid JSON"):
        load_target(_target(tmp_path, contract_artifact="artifact.json"))


def test_the_staging_profile_is_its_own_environment() -> None:
    loaded = load_stack(SAFEPSY / "stack.yaml")
    staging = loaded.in_environment("staging")
    assert staging.environment == "staging" and loaded.environment == "production"
    assert staging.spec.seed.users == 120 and staging.spec.seed.seed == 7
    assert loaded.spec.seed.users == 200, "the production file is left as it is"
    assert staging.ports is not None and (staging.ports.first, staging.ports.last) == (24000, 24999)
    assert staging.environment_release() == "1.4.0"
    assert loaded.in_environment("production") is loaded
    with pytest.raises(SpecError, match=r"profiles: no environment 'stagin'; expected one of"):
        loaded.in_environment("stagin")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"profiles.staging.release": "9.9.9"},
            r"profiles\.staging\.release: '9\.9\.9' is not one",
        ),
        ({"profiles.staging.ports": {"first": 24000, "last": 24010}}, r"at least 32 ports"),
        ({"profiles.staging.seed_users": 0}, r"profiles\.staging\.seed_users"),
        ({"profiles.production": {"seed_users": 5}}, r"profiles\.production: the stack file"),
        ({"profiles.Staging": {"seed_users": 5}}, r"profiles\.Staging"),
    ],
)
def test_a_broken_profile_is_named_with_its_field(
    stack_copy: Path, change: dict[str, object], expected: str
) -> None:
    _edit(stack_copy, change)
    with pytest.raises(SpecError, match=expected):
        load_stack(stack_copy)


def test_a_migration_must_name_an_app_service(stack_copy: Path) -> None:
    release = stack_copy.parent / "releases" / "1.10.0.yaml"
    release.write_text(release.read_text().replace("service: backend", "service: frontend"))
    with pytest.raises(SpecError, match=r"1\.10\.0\.yaml: migration\.service: 'frontend' is not"):
        load_stack(stack_copy)
