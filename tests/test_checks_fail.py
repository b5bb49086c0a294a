"""Every verification is shown to fail: each test breaks exactly what one check guards on a
real stack, watches that check turn red, then repairs the stack for the next test."""

from __future__ import annotations

import dataclasses
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from rollback_drill import chain, tls
from rollback_drill.checks import ALL_CHECKS, BY_NAME, run_checks
from rollback_drill.stack.local import LocalStack
from rollback_drill.stores import mongo
from rollback_drill.target import Target
from tests.helpers import user_deleted


def _target(stack: LocalStack) -> Target:
    baseline = mongo.fingerprint(stack.mongodb_uri, "safepsy", ["users"])
    return dataclasses.replace(stack.target(), baseline=baseline, integrity_collections=("users",))


def _assert_fails(name: str, target: Target) -> str:
    result = BY_NAME[name].run(target)
    assert not result.ok, f"{name} stayed green: {result.summary}"
    return result.summary


def _assert_passes(name: str, target: Target) -> None:
    result = BY_NAME[name].run(target)
    assert result.ok, result.explain()


def test_every_check_is_green_on_a_healthy_stack(local_stack: LocalStack) -> None:
    outcomes = run_checks(ALL_CHECKS, _target(local_stack))
    failed = [o.result.explain() for o in outcomes if o.result and not o.result.ok]
    assert not failed
    assert not [o.check.name for o in outcomes if o.skipped], (
        "nothing is skipped on a writable stack"
    )


@contextmanager
def _stopped(stack: LocalStack, service: str) -> Iterator[None]:
    stack.stop(service)
    try:
        yield
    finally:
        stack.start(service)


@pytest.mark.parametrize(
    ("check", "service"),
    [
        ("health.backend", "backend"),
        ("health.ai-chatbot", "ai-chatbot"),
        ("health.frontend", "frontend"),
        ("health.frontend-tls", "frontend"),
        ("functional.frontend_proxy", "backend"),
        ("functional.chat", "ai-chatbot"),
        ("connectivity.mongodb", "mongodb"),
        ("connectivity.redis", "redis"),
    ],
)
def test_check_fails_when_its_service_is_down(
    local_stack: LocalStack, check: str, service: str
) -> None:
    target = _target(local_stack)
    _assert_passes(check, target)
    with _stopped(local_stack, service):
        _assert_fails(check, target)
    _assert_passes(check, target)


def test_backend_health_fails_when_redis_is_down(local_stack: LocalStack) -> None:
    target = _target(local_stack)
    with _stopped(local_stack, "redis"):
        summary = _assert_fails("health.backend", target)
    assert "503" in summary


def test_did_health_fails_when_the_chain_freezes(local_stack: LocalStack) -> None:
    target = _target(local_stack)
    local_stack.pause("chain")
    try:
        _assert_fails("health.did", target)
    finally:
        local_stack.unpause("chain")
    _assert_passes("health.did", target)


def test_chain_check_fails_when_the_registry_is_paused(local_stack: LocalStack) -> None:
    target = _target(local_stack)
    assert target.contract_artifact and target.registry_address
    chain.set_paused(local_stack.rpc_url, target.contract_artifact, target.registry_address, True)
    try:
        assert "paused" in _assert_fails("connectivity.chain", target)
    finally:
        chain.set_paused(
            local_stack.rpc_url, target.contract_artifact, target.registry_address, False
        )
    _assert_passes("connectivity.chain", target)


def test_integrity_fails_when_a_user_is_deleted(local_stack: LocalStack) -> None:
    target = _target(local_stack)
    with user_deleted(local_stack.mongodb_uri):
        assert "documents" in _assert_fails("integrity.mongodb", target)
    _assert_passes("integrity.mongodb", target)


@contextmanager
def _test_user_changed(
    stack: LocalStack, change: Callable[[dict[str, object]], dict[str, object]]
) -> Iterator[None]:
    with mongo.client(stack.mongodb_uri) as conn:
        users = conn["safepsy"]["users"]
        original = users.find_one({"email": "test@safepsy.com"})
        assert original is not None
        users.update_one({"_id": original["_id"]}, {"$set": change(dict(original))})
        try:
            yield
        finally:
            users.replace_one({"_id": original["_id"]}, original)


def test_login_fails_when_the_test_account_is_gone(local_stack: LocalStack) -> None:
    target = _target(local_stack)
    with _test_user_changed(local_stack, lambda u: {"email": "moved@safepsy.test"}):
        assert "401" in _assert_fails("functional.login", target)
    _assert_passes("functional.login", target)


def test_bad_password_check_fails_when_the_backend_accepts_it(local_stack: LocalStack) -> None:
    from safepsy_app.passwords import hash_password  # the reference stack's own hashing

    target = _target(local_stack)
    wrong = "wrong-" + "x" * 12
    with _test_user_changed(
        local_stack, lambda u: {"passwordHash": hash_password(wrong, b"0123456789abcdef", 1000)}
    ):
        _assert_fails("functional.login_rejects_bad_password", target)
    _assert_passes("functional.login_rejects_bad_password", target)


def test_did_resolve_fails_when_backend_points_at_an_empty_registry(
    local_stack: LocalStack,
) -> None:
    target = _target(local_stack)
    original = local_stack.registry_address
    assert target.contract_artifact and original
    empty = chain.deploy_registry(local_stack.rpc_url, target.contract_artifact, "1.4.0")
    local_stack.registry_address = empty.address
    local_stack.set_release("backend", "1.4.0")
    local_stack.restart("backend")
    try:
        assert "404" in _assert_fails("functional.did_resolve", target)
    finally:
        local_stack.registry_address = original
        local_stack.set_release("backend", "1.4.0")
        local_stack.restart("backend")
    _assert_passes("functional.did_resolve", target)


def test_performance_fails_when_the_backend_stalls_past_the_threshold(
    local_stack: LocalStack,
) -> None:
    target = _target(local_stack)
    stall = target.thresholds.response_time_warning_s + 0.5
    local_stack.pause("backend")
    timer = threading.Timer(stall, local_stack.unpause, args=("backend",))
    timer.start()
    try:
        assert "backend /health took" in _assert_fails("performance.response_time", target)
    finally:
        timer.join()
    _assert_passes("performance.response_time", target)


def test_tls_fails_when_nginx_serves_a_certificate_from_another_ca(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    target = _target(local_stack)
    ssl_dir = local_stack.config_dir / "nginx" / "ssl"
    saved = tmp_path / "saved"
    shutil.copytree(ssl_dir, saved)
    rogue = tls.issue(tmp_path / "rogue", "safepsy.local")
    shutil.copy(rogue.cert_file, ssl_dir / "certificate.crt")
    shutil.copy(rogue.key_file, ssl_dir / "private.key")
    local_stack.restart("frontend")
    try:
        assert "CERTIFICATE_VERIFY_FAILED" in _assert_fails("tls.certificate", target)
    finally:
        shutil.copytree(saved, ssl_dir, dirs_exist_ok=True)
        local_stack.restart("frontend")
    _assert_passes("tls.certificate", target)
