"""Which compose command `--compose-file` runs: `docker compose` (v2) first, then
`docker-compose` (v1), or the one an option or ROLLBACK_DRILL_COMPOSE names.

The first test asks this machine's real programs. The others put stand-in `docker` and
`docker-compose` programs on PATH: compose v2 cannot be installed on the machines this project
is built on, and what they test is the choice between the two, not compose itself
(tests/test_compose.py runs a real compose project with whichever this machine has).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from rollback_drill.plugin.compose import (
    COMPOSE_ENV,
    V1,
    V2,
    Compose,
    ComposeMissing,
    detect_compose,
)


def _v2_here() -> bool:
    docker = shutil.which("docker")
    if docker is None:
        return False
    done = subprocess.run([docker, "compose", "version"], capture_output=True, check=False)
    return done.returncode == 0


def test_detects_the_compose_this_machine_has(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(COMPOSE_ENV, raising=False)
    if not _v2_here() and not shutil.which(V1):
        with pytest.raises(ComposeMissing, match=r"docker compose.*docker-compose"):
            detect_compose()
        return
    found = detect_compose()
    assert found.command == (V2 if _v2_here() else V1)
    done = subprocess.run(
        [*found.command.split(), "version"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr


def _stand_ins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, v2: bool, v1: bool) -> None:
    """A PATH holding only stand-in programs: `docker` whose `compose version` answers when
    `v2`, and `docker-compose` when `v1`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    answer = "0" if v2 else "1"
    docker = bin_dir / "docker"
    docker.write_text(f'#!/bin/sh\nif [ "$1" = compose ]; then exit {answer}; fi\nexit 0\n')
    docker.chmod(0o755)
    if v1:
        compose = bin_dir / "docker-compose"
        compose.write_text("#!/bin/sh\nexit 0\n")
        compose.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.delenv(COMPOSE_ENV, raising=False)


def test_v2_is_chosen_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _stand_ins(tmp_path, monkeypatch, v2=True, v1=True)
    assert detect_compose() == Compose(V2)
    assert detect_compose("auto") == Compose(V2)


def test_v1_when_the_docker_cli_has_no_compose_plugin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _stand_ins(tmp_path, monkeypatch, v2=False, v1=True)
    assert detect_compose() == Compose(V1)


def test_the_option_or_the_variable_chooses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _stand_ins(tmp_path, monkeypatch, v2=True, v1=True)
    assert detect_compose(V1) == Compose(V1)
    monkeypatch.setenv(COMPOSE_ENV, V1)
    assert detect_compose() == Compose(V1)
    assert detect_compose(V2) == Compose(V2)  # the option over the variable


def test_a_chosen_command_that_is_missing_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _stand_ins(tmp_path, monkeypatch, v2=False, v1=True)
    with pytest.raises(ComposeMissing, match=r"^docker compose not found: .*--compose-command"):
        detect_compose(V2)
    with pytest.raises(ComposeMissing, match="expected one of auto, docker compose, docker-"):
        detect_compose("podman-compose")


def test_neither_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _stand_ins(tmp_path, monkeypatch, v2=False, v1=False)
    with pytest.raises(ComposeMissing, match=r"`docker compose` \(v2\) or `docker-compose`"):
        detect_compose()


def test_each_names_its_containers_its_own_way() -> None:
    assert Compose(V1).container("rollback-drill-7", "backend") == "rollback-drill-7_backend_1"
    assert Compose(V2).container("rollback-drill-7", "backend") == "rollback-drill-7-backend-1"
