"""The nginx template and landing page, in front of the real backend and ai-chatbot."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from string import Template

import httpx
import pytest
from safepsy_fixture_support import (
    ROOT,
    Infra,
    Service,
    ServiceFactory,
    free_port,
    kill_group,
    spawn,
    wait_until,
)

SAFEPSY = ROOT / "fixtures" / "safepsy"
pytestmark = pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed")


class Edge:
    def __init__(self, prefix: Path, http_port: int, https_port: int) -> None:
        self.prefix = prefix
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{http_port}", trust_env=False)
        self.https = httpx.Client(
            base_url=f"https://127.0.0.1:{https_port}", verify=False, trust_env=False
        )
        self.https_port = https_port


@pytest.fixture(scope="module")
def services(start_service: ServiceFactory) -> dict[str, Service]:
    return {"backend": start_service("backend"), "chatbot": start_service("chatbot")}


@pytest.fixture(scope="module")
def edge(infra: Infra, services: dict[str, Service]) -> Iterator[Edge]:
    prefix = infra.workdir / "nginx"
    static = prefix / "static"
    static.mkdir(parents=True)
    page = Template((SAFEPSY / "frontend" / "index.html").read_text())
    (static / "index.html").write_text(page.substitute(release="1.4.0"))
    cert, key = prefix / "cert.pem", prefix / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "1", "-subj", "/CN=safepsy.local", "-keyout", str(key),
         "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    http_port, https_port = free_port(), free_port()
    template = Template((SAFEPSY / "nginx" / "nginx.conf.template").read_text())
    config = prefix / "nginx.conf"
    config.write_text(
        template.substitute(
            user_directive="user root;" if os.geteuid() == 0 else "",
            prefix=str(prefix),
            listen_host="127.0.0.1",
            http_port=http_port,
            https_port=https_port,
            cert_file=str(cert),
            key_file=str(key),
            static_root=str(static),
            backend_upstream=services["backend"].url.removeprefix("http://"),
            chatbot_upstream=services["chatbot"].url.removeprefix("http://"),
            connect_timeout="2s",
            resolver="",
            backend_target="safepsy_backend",
            chatbot_target="safepsy_chatbot",
        )
    )
    process = spawn(
        ["nginx", "-p", str(prefix), "-e", str(prefix / "startup.log"), "-c", str(config),
         "-g", "daemon off;"],
        log=prefix / "stderr.log",
    )  # fmt: skip
    state = Edge(prefix, http_port, https_port)
    try:
        wait_until(lambda: state.http.get("/nginx-health").status_code == 200, 10, "nginx")
        yield state
    finally:
        state.http.close()
        state.https.close()
        kill_group(process)


def test_health_and_static_page_on_both_ports(edge: Edge) -> None:
    for client in (edge.http, edge.https):
        health = client.get("/nginx-health")
        assert (health.status_code, health.text) == (200, "ok")
        page = client.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "release 1.4.0" in page.text
        assert "${" not in page.text and "http://" not in page.text and "https://" not in page.text
        assert client.get("/some/client/route").text == page.text
        assert "SafePsy" in client.get("/health").text, "/health is the page, not the backend"


def test_api_routes_reach_the_services(edge: Edge) -> None:
    did = edge.https.get("/api/did/health")
    assert did.status_code == 200 and did.json()["chainId"] == 80002
    chat = edge.https.post("/api/chat", json={"message": "hello"})
    assert chat.status_code == 200 and "reply" in chat.json()
    login = edge.http.post("/api/auth/login", content=b"{broken")
    assert login.status_code == 400, "path preserved: the backend itself answered"
    assert edge.http.get("/api/nope").json()["error"] == "no route for GET /api/nope"
    log = (edge.prefix / "access.log").read_text()
    assert '"POST /api/chat HTTP/1.1" 200' in log and "rt=" in log and "urt=" in log


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
def test_tls_1_2_or_later_only(edge: Edge) -> None:
    def handshake(maximum: ssl.TLSVersion) -> str | None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        context.maximum_version = maximum
        with (
            socket.create_connection(("127.0.0.1", edge.https_port), timeout=5) as raw,
            context.wrap_socket(raw) as tls,
        ):
            return tls.version()

    assert handshake(ssl.TLSVersion.TLSv1_2) == "TLSv1.2"
    assert handshake(ssl.TLSVersion.MAXIMUM_SUPPORTED) == "TLSv1.3"
    with pytest.raises(ssl.SSLError):
        handshake(ssl.TLSVersion.TLSv1_1)


def test_upstream_down_is_a_json_502(edge: Edge, services: dict[str, Service]) -> None:
    assert services["chatbot"].stop() == 0
    response = edge.http.post("/api/chat", json={"message": "anyone there?"})
    assert response.status_code == 502
    assert response.json()["error"] == "upstream unavailable"
