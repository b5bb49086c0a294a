"""pytest-docker with the reference stack's docker-compose file (compose v1): the documented
`--compose-file` path brings the project up, the verify suite passes against it, and the
project is gone afterwards."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import docker
import pytest

from rollback_drill.files.spec import LoadedStack
from rollback_drill.plugin.compose import (
    bootstrap_reference,
    compose_up,
    prepare_reference,
    project_name,
)
from rollback_drill.process.secrets import Secret
from rollback_drill.stack.select import docker_available
from rollback_drill.stack.targetfile import write_target_file
from tests.paths import PROJECT_ROOT

pytestmark = [
    pytest.mark.skipif(not docker_available(), reason="no Docker daemon answers"),
    pytest.mark.slow,  # containers and images: the whole suite runs it, the fast tier does not
]
COMPOSE_FILE = PROJECT_ROOT / "fixtures" / "safepsy" / "docker-compose.yml"


def _project_containers(project: str) -> list[str]:
    client = docker.from_env()
    try:
        label = f"com.docker.compose.project={project}"
        return [c.name for c in client.containers.list(all=True, filters={"label": label})]
    finally:
        client.close()


def test_verify_suite_against_the_compose_stack(stack_file: LoadedStack, tmp_path: Path) -> None:
    from rollback_drill.stack.docker_infra import ensure_images

    ensure_images(stack_file)
    prep = prepare_reference(stack_file, tmp_path, "1.4.0")
    password_file = tmp_path / "password"
    password_file.write_text("compose-test-" + tmp_path.name)
    password_file.chmod(0o600)
    project = project_name() + "-verify"
    with compose_up(COMPOSE_FILE, project, prep.env) as services:
        assert len(_project_containers(project)) == 6
        target = bootstrap_reference(
            stack_file,
            prep,
            Secret(password_file.read_text()),
            services,
            "1.4.0",
            tmp_path / "seed.log",
            project=project,
        )
        target_file = write_target_file(target, tmp_path / "target", password_file)
        run = subprocess.run(
            [sys.executable, "-m", "pytest", "-m", "verify", "-q", "-p", "no:cacheprovider",
             "--compose-file", str(COMPOSE_FILE), "--compose-project", project,
             "--target", str(target_file), str(PROJECT_ROOT / "verifications")],
            capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=300, env=_env(prep.env),
        )  # fmt: skip
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
        assert " passed" in run.stdout
        # the plugin's session fixture took the project down when the verify run ended
        assert _project_containers(project) == []
    assert _project_containers(project) == []


def _env(extra: dict[str, str]) -> dict[str, str]:
    import os

    return {**os.environ, **extra}
