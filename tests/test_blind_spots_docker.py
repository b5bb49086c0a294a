"""Verify's blind spots of issue 19 on the docker backend, where the backend can express them:
redis answering PING while refusing writes, the chain holding another DID document than the
database, and the applications repointed at another database. (A leftover instance behind
nginx is shown on the local backend only: it needs a second process bound to a service's
port, which a container's own network namespace does not share.) Each breaks what one check
guards on a real DockerStack, watches it turn red naming what broke, repairs, and watches it
turn green again; tests/test_checks_fail.py shows the same on the local backend."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from rollback_drill.chain import keys
from rollback_drill.checks import BY_NAME
from rollback_drill.files.spec import LoadedStack
from rollback_drill.stack.select import docker_available
from rollback_drill.stack.target import Target
from rollback_drill.stores import mongo
from tests.helpers import anchored_dids, apps_on_database, did_subject, redis_config, registry_of

if TYPE_CHECKING:
    from rollback_drill.stack.docker import DockerStack

pytestmark = pytest.mark.skipif(not docker_available(), reason="no Docker daemon answers")


@pytest.fixture(scope="module")
def docker_stack(stack_file: LoadedStack) -> Iterator[DockerStack]:
    from rollback_drill.stack.docker import DockerStack

    with DockerStack(stack_file, seed_users=30).running("1.4.0") as stack:
        yield stack


def _target(stack: DockerStack) -> Target:
    target = stack.target()
    baseline = mongo.fingerprint(stack.mongodb_uri, "safepsy", list(target.integrity_collections))
    return dataclasses.replace(target, baseline=baseline)


def _state(name: str, target: Target) -> tuple[bool, str]:
    result = BY_NAME[name].run(target)
    return result.ok, result.summary


def test_redis_writes_fail_on_docker_when_redis_refuses_writes(docker_stack: DockerStack) -> None:
    target = _target(docker_stack)
    assert _state("stores.redis_writes", target)[0]
    with redis_config(docker_stack, min_replicas_to_write="1"):
        assert _state("connectivity.redis", target)[0]  # the blind spot: PONG
        ok, summary = _state("stores.redis_writes", target)
        assert not ok and "NOREPLICAS" in summary, summary
    assert _state("stores.redis_writes", target)[0]


def test_did_documents_fail_on_docker_when_the_chain_disagrees(docker_stack: DockerStack) -> None:
    target = _target(docker_stack)
    ok, summary = _state("stores.did_documents", target)
    assert ok, summary
    victim = next(a for a in anchored_dids(docker_stack) if a["did"] != target.test_did)
    registry = registry_of(docker_stack)
    signer = keys.operator_signer(docker_stack.workdir)
    original = registry.resolve(did_subject(victim["did"]))
    altered = original.replace('"controller":"did:', '"controller":"did:x')
    registry.register(signer, did_subject(victim["did"]), altered, 30.0)
    try:
        ok, summary = _state("stores.did_documents", target)
        assert not ok and victim["did"] in summary, summary
        assert _state("chain.registry", target)[0]  # each store alone still looks right
    finally:
        registry.register(signer, did_subject(victim["did"]), original, 30.0)
    assert _state("stores.did_documents", target)[0]


def test_app_database_fails_on_docker_when_the_apps_use_another_database(
    docker_stack: DockerStack,
) -> None:
    target = _target(docker_stack)
    assert _state("stores.app_database", target)[0]
    with apps_on_database(docker_stack, "safepsy_restored"):
        assert _state("flow.login", target)[0]  # the blind spot: every flow works
        ok, summary = _state("stores.app_database", target)
        assert not ok and "safepsy_restored" in summary, summary
    assert _state("stores.app_database", target)[0]
