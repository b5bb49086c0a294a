"""Contract releases: the committed artifacts are what their sources compile to (solcjs, the
committed settings), each release names a contract version the stack file has an artifact
for, and a stale artifact or an unknown version is refused, naming what is wrong."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from rollback_drill.files.spec import LoadedStack, load_stack
from rollback_drill.process.errors import SpecError
from rollback_drill.process.tools import find_tool
from tests.helpers import copy_stack_file
from tests.paths import PROJECT_ROOT

CONTRACTS = PROJECT_ROOT / "fixtures" / "safepsy" / "contracts"


def _check(contracts: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [find_tool("node"), str(contracts / "compile.mjs"), "--check", *args],
        capture_output=True, text=True, timeout=120, check=False,
        env={"PATH": "/usr/bin:/bin", "NODE_PATH": str(PROJECT_ROOT / "node_modules")},
    )  # fmt: skip


def test_committed_artifacts_match_their_sources() -> None:
    done = _check(CONTRACTS)
    assert done.returncode == 0, done.stderr
    versions = sorted(p.name for p in CONTRACTS.iterdir() if (p / "DIDRegistry.sol").is_file())
    assert versions == ["1.4.0", "1.9.0", "1.9.1"]
    assert done.stdout.count("is up to date") == len(versions)
    for version in versions:
        artifact = json.loads((CONTRACTS / "build" / version / "DIDRegistry.json").read_text())
        source = (CONTRACTS / version / "DIDRegistry.sol").read_bytes()
        assert artifact["version"] == version and artifact["source"] == f"{version}/DIDRegistry.sol"
        assert artifact["sourceSha256"] == hashlib.sha256(source).hexdigest()
        assert artifact["compiler"]["evmVersion"] == "shanghai"


def test_a_source_changed_after_compiling_is_a_stale_artifact(tmp_path: Path) -> None:
    copy = tmp_path / "contracts"
    shutil.copytree(CONTRACTS, copy)
    (copy / "node_modules").symlink_to(PROJECT_ROOT / "node_modules")
    source = copy / "1.4.0" / "DIDRegistry.sol"
    source.write_text(source.read_text().replace("paused = true;", "paused = !paused;"))
    done = _check(copy)
    assert done.returncode == 1
    assert "build/1.4.0/DIDRegistry.json is stale" in done.stderr
    assert "build/1.9.0/DIDRegistry.json is up to date" in done.stdout
    assert _check(copy, "--version", "1.9.1").returncode == 0  # one version alone


def test_every_release_names_a_contract_version_with_an_artifact(stack_file: LoadedStack) -> None:
    for version, release in stack_file.releases.items():
        artifact = stack_file.contract_artifact(release.contract_version)
        assert json.loads(artifact.read_text())["version"] == release.contract_version, version
    assert stack_file.release("1.9.0").contract_version == "1.9.0"
    assert stack_file.release("1.9.1").defect is not None


def test_a_release_with_a_contract_version_the_stack_lacks_is_refused(tmp_path: Path) -> None:
    def drop(spec: dict[str, object]) -> None:
        chain = spec["chain"]
        assert isinstance(chain, dict)
        del chain["contracts"]["1.9.1"]

    with pytest.raises(SpecError) as err:
        load_stack(copy_stack_file(tmp_path, "stack.yaml", drop))
    assert "1.9.1.yaml: contract_version: '1.9.1' is not one of the contract versions" in str(
        err.value
    )


def test_a_missing_contract_artifact_is_named(tmp_path: Path) -> None:
    def break_it(spec: dict[str, object]) -> None:
        chain = spec["chain"]
        assert isinstance(chain, dict)
        chain["contracts"]["1.9.0"] = str(tmp_path / "nope.json")

    with pytest.raises(SpecError, match=r"chain\.contracts\.1\.9\.0: .*not found"):
        load_stack(copy_stack_file(tmp_path, "stack.yaml", break_it))


def test_a_stack_standing_in_for_another_network(stack_file: LoadedStack) -> None:
    mainnet = stack_file.on_chain(137)
    assert mainnet.spec.chain.chain_id == 137
    assert stack_file.spec.chain.chain_id == 80002, "the stack file itself is unchanged"
    assert mainnet.releases is stack_file.releases and mainnet.path == stack_file.path
    assert yaml.safe_load(stack_file.path.read_text())["chain"]["chain_id"] == 80002
