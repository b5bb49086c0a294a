"""The docker backend, on a real daemon: containers on a private network, ports on 127.0.0.1
only, the runbook's docker operations, and nothing left behind - also after SIGKILL."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import docker
import httpx
import pytest

from rollback_drill import proc
from rollback_drill.spec import LoadedStack
from rollback_drill.stack.base import Stack
from rollback_drill.stack.select import docker_available
from rollback_drill.stores import mongo
from rollback_drill.tools import PROJECT_ROOT

if TYPE_CHECKING:
    from rollback_drill.stack.docker import DockerStack

pytestmark = pytest.mark.skipif(not docker_available(), reason="no Docker daemon answers")


@pytest.fixture(scope="module")
def docker_stack(stack_file: LoadedStack) -> Iterator[DockerStack]:
    from rollback_drill.stack.docker import DockerStack

    with DockerStack(stack_file, seed_users=30).running("1.4.0") as stack:
        yield stack


def _ours(run_id: str) -> tuple[list[str], list[str]]:
    client = docker.from_env()
    try:
        label = f"rollback-drill.run={run_id}"
        containers = [c.name for c in client.containers.list(all=True, filters={"label": label})]
        networks = [n.name for n in client.networks.list(filters={"label": label})]
    finally:
        client.close()
    return containers, networks


def test_docker_stack_implements_the_protocol(docker_stack: DockerStack) -> None:
    assert isinstance(docker_stack, Stack)
    assert docker_stack.backend_name == "docker"


def test_one_container_per_service_on_a_private_network(docker_stack: DockerStack) -> None:
    client = docker.from_env()
    try:
        containers = client.containers.list(
            filters={"label": f"rollback-drill.run={docker_stack.run_id}"}
        )
        services = {c.labels["rollback-drill.service"] for c in containers}
        assert services == {*docker_stack.all_services(), "chain"}
        for container in containers:
            networks = container.attrs["NetworkSettings"]["Networks"]
            assert len(networks) == 1 and "bridge" not in networks
            for bindings in container.attrs["HostConfig"]["PortBindings"].values():
                assert all(b["HostIp"] == "127.0.0.1" for b in bindings), container.name
    finally:
        client.close()


def test_runbook_docker_operations(docker_stack: DockerStack) -> None:
    code, out = docker_stack.exec(
        "mongodb", ["mongosh", "--eval", "db.getSiblingDB('safepsy').users.countDocuments()"]
    )
    assert code == 0, out
    printed = mongo.fingerprint(docker_stack.target().mongodb_uri.reveal(), "safepsy", ["users"])
    assert int(out.strip().splitlines()[-1]) == printed.collections["users"].count
    assert docker_stack.exec("frontend", ["nginx", "-t"])[0] == 0
    assert "PONG" in docker_stack.exec("redis", ["redis-cli", "ping"])[1]
    stats = docker_stack.stats()
    assert all(usage.memory_bytes > 0 and usage.memory_limit_bytes > 0 for usage in stats.values())


def test_pause_is_a_connectivity_loss_and_unpause_restores(docker_stack: DockerStack) -> None:
    url = docker_stack.target().backend_url + "/health"
    docker_stack.pause("redis")
    try:
        resp = httpx.get(url, timeout=5)
        assert resp.status_code == 503
    finally:
        docker_stack.unpause("redis")
    assert httpx.get(url, timeout=5).status_code == 200


def test_deploy_runs_the_release_image_and_stop_start_keeps_data(docker_stack: DockerStack) -> None:
    before = mongo.fingerprint(docker_stack.target().mongodb_uri.reveal(), "safepsy", ["users"])
    docker_stack.deploy("backend", "1.5.0")
    try:
        names = docker_stack.container_names()
        client = docker.from_env()
        image = client.containers.get(names["backend"]).image.tags
        client.close()
        assert "rollback-drill/safepsy-backend:1.5.0" in image
        assert (
            httpx.get(docker_stack.target().backend_url + "/health", timeout=5).status_code == 503
        )
    finally:
        docker_stack.deploy("backend", "1.4.0")
        docker_stack.start("backend")
    docker_stack.stop("mongodb")
    assert not docker_stack.is_running("mongodb")
    docker_stack.start("mongodb")
    docker_stack.restart("backend")
    assert (
        mongo.fingerprint(docker_stack.target().mongodb_uri.reveal(), "safepsy", ["users"])
        == before
    )
    assert httpx.get(docker_stack.target().backend_url + "/health", timeout=5).status_code == 200


def test_sigkilled_run_is_swept_by_the_next(tmp_path: Path) -> None:
    """SIGKILL a pytest process amid a docker drill; the next run removes what it left."""
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "drills",
            "--stack-backend",
            "docker",
            "-p",
            "no:cacheprovider",
            "-q",
            "--drill-artifacts",
            str(tmp_path),
        ],
        cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = docker.from_env()
    try:

        def running_containers() -> list[str]:
            label = f"rollback-drill.owner-pid={child.pid}"
            return [c.name for c in client.containers.list(filters={"label": label})]

        proc.wait_until(
            lambda: len(running_containers()) >= 4, timeout=120, what="drill containers running"
        )
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        time.sleep(0.5)
        label = f"rollback-drill.owner-pid={child.pid}"
        assert client.containers.list(all=True, filters={"label": label}), (
            "SIGKILL left nothing to sweep?"
        )
        next_run = subprocess.run(
            [sys.executable, "-m", "pytest", "tests/test_spec.py", "-q", "-p", "no:cacheprovider"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert next_run.returncode == 0, next_run.stdout[-2000:]
        assert client.containers.list(all=True, filters={"label": label}) == []
        assert client.networks.list(filters={"label": label}) == []
    finally:
        if child.poll() is None:
            child.kill()
        client.close()


def test_down_removes_every_container_and_the_network(stack_file: LoadedStack) -> None:
    from rollback_drill.stack.docker import DockerStack

    stack = DockerStack(stack_file, seed_users=10)
    try:
        stack.up("1.4.0")
        containers, networks = _ours(stack.run_id)
        assert len(containers) == 6 and len(networks) == 1
    finally:
        stack.down()
    assert _ours(stack.run_id) == ([], [])
