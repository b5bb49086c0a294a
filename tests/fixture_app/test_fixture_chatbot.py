"""The SafePsy ai-chatbot over real HTTP against a real SecantusDB."""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest
from safepsy_app.replies import REPLIES
from safepsy_fixture_support import PYTHON, Infra, Service, ServiceFactory, closed_port


@pytest.fixture(scope="module")
def chatbot(start_service: ServiceFactory) -> Service:
    return start_service("chatbot", RELEASE="1.4.0")


def test_starts_fast_and_is_healthy(chatbot: Service) -> None:
    assert chatbot.startup_s < 2.0, f"first answer after {chatbot.startup_s:.2f}s"
    response = chatbot.client.get("/health")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "service": "ai-chatbot",
        "release": "1.4.0",
        "database": "safepsy",
        "checks": {"mongodb": "ok"},
    }
    assert response.headers["X-SafePsy-Release"] == "ai-chatbot 1.4.0"
    assert chatbot.client.get("/api/chat").status_code == 405  # what verify reads it by


def test_chat_is_deterministic_and_recorded(chatbot: Service, infra: Infra) -> None:
    first = chatbot.client.post("/api/chat", json={"message": "I feel  anxious today"})
    assert first.status_code == 200
    body = first.json()
    assert body["reply"] in REPLIES
    again = chatbot.client.post("/api/chat", json={"message": "  i FEEL anxious\ttoday "})
    assert again.json()["reply"] == body["reply"], "normalised message -> same reply"
    assert again.json()["conversationId"] != body["conversationId"]
    with infra.mongo() as client:
        record = client["safepsy"]["chat_messages"].find_one(
            {"conversationId": body["conversationId"]}
        )
    assert record is not None
    assert record["message"] == "I feel  anxious today"
    assert record["reply"] == body["reply"]
    assert record["release"] == "1.4.0"
    assert record["createdAt"] is not None


def test_replies_vary_with_the_message(chatbot: Service) -> None:
    replies = {
        chatbot.client.post("/api/chat", json={"message": f"message {n}"}).json()["reply"]
        for n in range(30)
    }
    assert len(replies) > 3


def test_conversation_id_is_kept(chatbot: Service) -> None:
    response = chatbot.client.post(
        "/api/chat", json={"message": "hello", "conversationId": "conv-123"}
    )
    assert response.status_code == 200
    assert response.json()["conversationId"] == "conv-123"


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b'"just a string"',
        b"{}",
        b'{"message": 42}',
        b'{"message": "   "}',
        b'{"message": "' + b"x" * 2001 + b'"}',
        b'{"message": "hi", "conversationId": "bad id!"}',
    ],
)
def test_chat_rejects_bad_requests(chatbot: Service, payload: bytes) -> None:
    response = chatbot.client.post("/api/chat", content=payload)
    assert response.status_code == 400
    assert "error" in response.json()


def test_message_of_exactly_2000_chars_is_accepted(chatbot: Service) -> None:
    response = chatbot.client.post("/api/chat", json={"message": "y" * 2000})
    assert response.status_code == 200


def test_unknown_route_and_method(chatbot: Service) -> None:
    assert chatbot.client.get("/api/chat").status_code == 405
    assert chatbot.client.get("/api/auth/login").status_code == 404


def test_mongodb_down_gives_503(start_service: ServiceFactory) -> None:
    service = start_service("chatbot", MONGODB_URI=f"mongodb://127.0.0.1:{closed_port()}")
    with ThreadPoolExecutor(2) as pool:  # both wait out MongoDB's selection timeout
        pending = pool.submit(service.client.get, "/health")
        chat = pool.submit(service.client.post, "/api/chat", json={"message": "hello"}).result()
        health = pending.result()
    assert health.status_code == 503
    assert health.json()["status"] == "unhealthy"
    assert health.json()["checks"]["mongodb"].startswith("mongodb unavailable")
    assert chat.status_code == 503


def test_chatbot_needs_no_redis_or_chain_config(
    infra: Infra, start_service: ServiceFactory
) -> None:
    env_without = {"REDIS_URL": "", "CHAIN_RPC_URL": "", "DID_REGISTRY_ADDRESS": ""}
    service = start_service("chatbot", **env_without)
    assert service.client.get("/health").status_code == 200
    assert service.stop() == 0


def test_missing_mongodb_uri_exits_2(infra: Infra) -> None:
    env = infra.service_env(PORT="0", MONGODB_URI="")
    result = subprocess.run(
        [PYTHON, "-m", "safepsy_app.chatbot"], env=env, capture_output=True, text=True, timeout=10
    )
    assert result.returncode == 2
    assert "MONGODB_URI: expected a mongodb URL" in result.stderr
