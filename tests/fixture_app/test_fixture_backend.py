"""The SafePsy backend over real HTTP against real SecantusDB, Redis and anvil."""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from safepsy_app.did import document_json, subject_of
from safepsy_app.seed_data import email_for, seeded_password, user_id
from safepsy_fixture_support import (
    PYTHON,
    TEST_PASSWORD,
    Infra,
    Service,
    ServiceFactory,
    closed_port,
)


@pytest.fixture(scope="module")
def backend(seeded: dict[str, Any], start_service: ServiceFactory) -> Service:
    return start_service("backend")


def login(service: Service, email: str = "test@safepsy.com", password: str = TEST_PASSWORD) -> Any:
    response = service.client.post("/api/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    return response.json()


def test_starts_fast_and_is_healthy(backend: Service) -> None:
    assert backend.startup_s < 2.0, f"first answer after {backend.startup_s:.2f}s"
    response = backend.client.get("/health")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "service": "backend",
        "release": "1.4.0",
        "database": "safepsy",
        "schemaVersion": 1,
        "checks": {"mongodb": "ok", "redis": "ok", "schema": "ok"},
    }
    assert response.headers["X-SafePsy-Release"] == "backend 1.4.0"
    assert backend.client.get("/nowhere").headers["X-SafePsy-Release"] == "backend 1.4.0"
    assert response.headers["content-type"] == "application/json"


def test_login_creates_session_in_mongo_and_redis(backend: Service, infra: Infra) -> None:
    body = login(backend)
    assert body["expiresIn"] == 600
    assert body["user"]["id"] == "u000000"
    assert body["user"]["email"] == "test@safepsy.com"
    assert body["user"]["did"].startswith("did:safepsy:")
    key = hashlib.sha256(body["token"].encode()).hexdigest()
    with infra.redis() as cache:
        assert cache.get(f"session:{key}") == "u000000"
        assert 0 < cache.ttl(f"session:{key}") <= 600
    with infra.mongo() as client:
        session = client["safepsy"]["sessions"].find_one({"_id": key})
    assert session is not None
    assert session["userId"] == "u000000"
    assert (session["expiresAt"] - session["createdAt"]).total_seconds() == pytest.approx(600)


def test_seeded_user_can_log_in(backend: Service) -> None:
    uid = user_id(7)
    body = login(backend, email_for(7).upper(), seeded_password(TEST_PASSWORD, 42, uid))
    assert body["user"]["id"] == uid


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        (b"{not json", 400),
        (b"[]", 400),
        (b"\xff\xfe", 400),
        (json.dumps({"email": "test@safepsy.com"}).encode(), 400),
        (json.dumps({"email": 5, "password": "x"}).encode(), 400),
        (json.dumps({"email": "test@safepsy.com", "password": ""}).encode(), 400),
        (json.dumps({"email": "nobody@safepsy.com", "password": "x"}).encode(), 401),
        (json.dumps({"email": "test@safepsy.com", "password": "wrong"}).encode(), 401),
    ],
)
def test_login_rejects_bad_requests(backend: Service, payload: bytes, status: int) -> None:
    response = backend.client.post("/api/auth/login", content=payload)
    assert response.status_code == status
    assert "error" in response.json()


def test_unknown_route_method_and_oversized_body(backend: Service) -> None:
    assert backend.client.get("/nope").status_code == 404
    assert backend.client.delete("/health").status_code == 405
    assert backend.client.get("/api/auth/login").status_code == 405
    big = backend.client.post("/api/auth/login", content=b"x" * (70 * 1024))
    assert big.status_code == 413


def test_did_health(backend: Service, infra: Infra) -> None:
    response = backend.client.get("/api/did/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["chainId"] == 80002
    assert body["blockNumber"] >= 1
    assert body["registry"] == infra.registry.lower()
    assert body["contractVersion"] == "1.4.0"
    assert body["paused"] is False


def test_seed_registered_test_did_and_resolve(
    backend: Service, seeded: dict[str, Any], infra: Infra
) -> None:
    assert seeded["test_did_tx"].startswith("0x")
    did = login(backend)["user"]["did"]
    response = backend.client.get(f"/api/did/resolve/{did}")
    assert response.status_code == 200
    assert response.json() == {"did": did, "document": json.loads(document_json(did))}


def test_resolve_errors(backend: Service) -> None:
    missing = backend.client.get("/api/did/resolve/did:safepsy:0000")
    assert missing.status_code == 404
    assert missing.json()["did"] == "did:safepsy:0000"
    assert backend.client.get("/api/did/resolve/not-a-did").status_code == 400
    assert backend.client.get("/api/did/resolve/").status_code == 400


def test_register_requires_session(backend: Service) -> None:
    assert backend.client.post("/api/did/register").status_code == 401
    bad = backend.client.post("/api/did/register", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401
    basic = backend.client.post("/api/did/register", headers={"Authorization": "Basic abc"})
    assert basic.status_code == 401


def test_register_anchors_did_on_chain(backend: Service, infra: Infra) -> None:
    uid = user_id(3)
    body = login(backend, email_for(3), seeded_password(TEST_PASSWORD, 42, uid))
    did = body["user"]["did"]
    assert backend.client.get(f"/api/did/resolve/{did}").status_code == 404
    headers = {"Authorization": f"Bearer {body['token']}"}
    response = backend.client.post("/api/did/register", headers=headers)
    assert response.status_code == 201, response.text
    tx_hash = response.json()["txHash"]
    assert response.json()["did"] == did
    receipt = infra.rpc("eth_getTransactionReceipt", [tx_hash])
    assert receipt["status"] == "0x1"
    # The DIDRegistered event carries keccak256(did) as its indexed topic.
    assert receipt["logs"][0]["topics"][1] == "0x" + subject_of(did).hex()
    resolved = backend.client.get(f"/api/did/resolve/{did}").json()
    assert resolved["document"] == {
        "@context": "https://www.w3.org/ns/did/v1",
        "id": did,
        "controller": did,
    }
    with infra.mongo() as client:
        record = client["safepsy"]["did_documents"].find_one({"_id": did})
    assert record is not None and record["txHash"] == tx_hash


def test_session_falls_back_to_mongo_after_redis_flush(backend: Service, infra: Infra) -> None:
    token = login(backend)["token"]
    key = f"session:{hashlib.sha256(token.encode()).hexdigest()}"
    with infra.redis() as cache:
        cache.delete(key)
        response = backend.client.post(
            "/api/did/register", headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 201, response.text
        assert cache.get(key) == "u000000", "the session is re-cached after the fallback"


def test_register_while_paused_is_503(backend: Service, infra: Infra) -> None:
    token = login(backend)["token"]
    pause, unpause = "0x8456cb59", "0x3f4ba83a"  # selectors of pause() and unpause()
    infra.rpc(
        "eth_sendTransaction", [{"from": infra.operator, "to": infra.registry, "data": pause}]
    )
    try:
        assert backend.client.get("/api/did/health").json()["paused"] is True
        response = backend.client.post(
            "/api/did/register", headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 503
        assert response.json()["error"] == "DID registry is paused"
    finally:
        infra.rpc(
            "eth_sendTransaction", [{"from": infra.operator, "to": infra.registry, "data": unpause}]
        )


def test_schema_mismatch_is_unhealthy_and_sigterm_is_clean(start_service: ServiceFactory) -> None:
    service = start_service("backend", RELEASE="1.5.0", USER_SCHEMA_VERSION="2")
    response = service.client.get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unhealthy"
    assert body["release"] == "1.5.0"
    assert body["checks"]["mongodb"] == "ok"
    assert body["checks"]["schema"] == (
        "users schema v1 found, release 1.5.0 requires v2: migration missing"
    )
    assert body["error"] == body["checks"]["schema"]
    # SIGTERM: a clean, quick exit, with the request lines in the log (stderr).
    began = time.monotonic()
    assert service.stop() == 0
    assert time.monotonic() - began < 2.0
    log = service.log_text()
    assert "GET /health 503" in log
    assert "received SIGTERM" in log


def test_dependencies_down_give_503_quickly(start_service: ServiceFactory) -> None:
    service = start_service(
        "backend",
        MONGODB_URI=f"mongodb://127.0.0.1:{closed_port()}",
        REDIS_URL=f"redis://127.0.0.1:{closed_port()}/0",
        CHAIN_RPC_URL=f"http://127.0.0.1:{closed_port()}",
    )
    began = time.monotonic()
    with ThreadPoolExecutor(2) as pool:  # both wait out MongoDB's selection timeout
        health = pool.submit(service.client.get, "/health")
        login_response = pool.submit(
            service.client.post,
            "/api/auth/login",
            json={"email": "test@safepsy.com", "password": "x"},
        ).result()
        response = health.result()
    assert time.monotonic() - began < 2.5
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["mongodb"].startswith("mongodb unavailable")
    assert checks["redis"].startswith("redis unavailable")
    assert checks["schema"] == "skipped: mongodb unavailable"
    assert login_response.status_code == 503
    chain = service.client.get("/api/did/health")
    assert chain.status_code == 503
    assert chain.json()["error"].startswith("chain unavailable")
    assert service.client.get("/api/did/resolve/did:safepsy:abc").status_code == 503


def test_no_contract_at_registry_is_503(start_service: ServiceFactory, infra: Infra) -> None:
    service = start_service("backend", DID_REGISTRY_ADDRESS="0x" + "11" * 20)
    response = service.client.get("/api/did/health")
    assert response.status_code == 503
    assert "no contract code" in response.json()["error"]


#: One broken variable per case, and the name the error message must contain.
BAD_CONFIG = [
    ({"RELEASE": ""}, "RELEASE"),
    ({"PORT": "70000"}, "PORT"),
    ({"MONGODB_URI": "localhost:27017"}, "MONGODB_URI"),
    ({"CHAIN_RPC_URL": "ws://127.0.0.1:8545"}, "CHAIN_RPC_URL"),
    ({"DID_REGISTRY_ADDRESS": "0x1234"}, "DID_REGISTRY_ADDRESS"),
    ({"USER_SCHEMA_VERSION": ""}, "USER_SCHEMA_VERSION"),
    ({"SESSION_TTL_SECONDS": "0"}, "SESSION_TTL_SECONDS"),
]


def test_bad_config_exits_nonzero_naming_the_variable(infra: Infra) -> None:
    """Every case at once (each is a separate interpreter start, ~0.4 s apiece)."""
    launched = [
        (
            variable,
            subprocess.Popen(
                [PYTHON, "-m", "safepsy_app.backend"],
                env=infra.service_env(**{"PORT": "0", **override}),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            ),
        )
        for override, variable in BAD_CONFIG
    ]
    for variable, process in launched:
        _, stderr = process.communicate(timeout=20)
        assert process.returncode == 2, (variable, stderr)
        assert f"configuration error: {variable}: expected" in stderr, stderr
