"""Verify's docker access on a real container: memory as `docker stats` reports it (read from
the container's cgroup, checked against the stats API and the container's own limit), the
memory warning turning red, and `docker logs` cut at a mark."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterator

import docker
import pytest

from rollback_drill.checks import BY_NAME
from rollback_drill.stack.access import DockerLogs, DockerStats
from rollback_drill.stack.select import docker_available
from rollback_drill.stack.target import Target
from tests.helpers import bare_target

pytestmark = [
    pytest.mark.skipif(not docker_available(), reason="no Docker daemon answers"),
    pytest.mark.slow,  # containers: not in the fast tier
]
IMAGE = "rollback-drill/redis:7.0"
LIMIT = 64 * 1024 * 1024


@pytest.fixture(scope="module")
def container(stack_file: object) -> Iterator[str]:
    from rollback_drill.stack.docker_infra import ensure_images

    assert stack_file is not None
    ensure_images(stack_file)  # type: ignore[arg-type]
    client = docker.from_env()
    name = f"rollback-drill-verify-{os.getpid()}"
    started = client.containers.run(
        IMAGE, name=name, detach=True, mem_limit=LIMIT, remove=True,
        labels={"rollback-drill.owner": str(os.getpid())},
    )  # fmt: skip
    try:
        yield name
    finally:
        started.remove(force=True)
        client.close()


def _target(stats: DockerStats) -> Target:
    return bare_target("docker", "http://127.0.0.1:1", stats)


def test_memory_reads_what_docker_stats_reports_and_the_warning_turns_red(container: str) -> None:
    (sample,) = DockerStats({"redis": container}).memory().values()
    assert sample.limit_bytes == LIMIT
    client = docker.from_env()
    try:
        api = client.containers.get(container).stats(stream=False)["memory_stats"]
    finally:
        client.close()
    assert api["limit"] == LIMIT
    assert abs(sample.used_bytes - api["usage"]) < 8 * 1024 * 1024  # same cgroup, a moment apart
    target = _target(DockerStats({"redis": container}))
    assert BY_NAME["resources.memory"].run(target).ok
    tight = dataclasses.replace(
        target, thresholds=target.thresholds.model_copy(update={"memory_warning": 0.001})
    )
    result = BY_NAME["resources.memory"].run(tight)
    assert not result.ok and "WARNING memory over" in result.summary
    unknown = BY_NAME["resources.memory"].run(_target(DockerStats({"redis": "no-such-thing"})))
    assert not unknown.ok and "no docker container named no-such-thing" in unknown.summary


def test_docker_logs_since_a_mark(container: str) -> None:
    logs = DockerLogs({"redis": container})
    time.sleep(1.1)  # redis' start-up lines are older than the mark
    mark = logs.mark()
    assert logs.since(mark)["redis"] == ""
    client = docker.from_env()
    try:
        written = client.containers.get(container).exec_run(
            ["sh", "-c", "echo verify-mark-line > /proc/1/fd/1"]
        )
        assert written.exit_code == 0, written.output
    finally:
        client.close()
    assert "verify-mark-line" in logs.since(mark)["redis"]
