"""The runbook's user journeys ("Functional Testing") as locust users, for live load during
every drill: the landing page, login, DID health and resolution, and the AI chatbot, all
through nginx as users reach them, over HTTP and HTTPS.

Run by rollback_drill/monitoring/load.py as a subprocess (never imported into pytest: locust
patches the whole process with gevent). Every request becomes one raw sample line -
wall-clock start, journey, latency, outcome, status, first words of the error - because
locust's own CSV totals lag and its percentiles are 10 s windows, too coarse for a
three-second outage. In locust's distributed mode, workers batch their samples to the master
as messages and only the master writes, so a team can load a staging stack from several
machines and still get one stream.

Configuration (environment): LOAD_SAMPLES_FILE, LOAD_FRONTEND_TLS_URL (optional), LOAD_CA_FILE
(optional), LOAD_TEST_EMAIL, LOAD_TEST_PASSWORD, LOAD_TEST_DID (optional). The host (`--host`)
is the frontend's HTTP URL.
"""

from __future__ import annotations

import json
import os
import random
import re
import ssl
import threading
import time
import uuid
from http.client import RemoteDisconnected
from typing import Any

from locust import HttpUser, between, events, task
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner
from urllib3.exceptions import ProtocolError, SSLError
from urllib3.util.retry import Retry

SAMPLES_MESSAGE = "rollback-drill-samples"
_UNANSWERED = (RemoteDisconnected, ConnectionResetError, BrokenPipeError)
_TLS_CLOSED = (ssl.SSLEOFError, ssl.SSLZeroReturnError)


class ReusedConnectionRetry(Retry):
    """A browser sends a request again, once, when the connection it reused closes before any
    answer (RFC 9110 9.2.2: a server may close an idle keep-alive connection just as a request
    goes out; nginx's old workers do after a reload). Chromium resends then whatever the method
    (`HttpNetworkTransaction::ShouldResendRequest`: a reused socket closed or reset before a
    byte of the answer), so a POST is sent again too, but only on such a close: a GET also
    after a read that broke later. No retry of a refused connection, a timeout or an HTTP
    error status. Over TLS the same close reads as an EOF of the TLS session (nginx's old
    worker closes without close_notify: OpenSSL's "EOF occurred in violation of protocol"),
    which Chromium maps to the same ERR_CONNECTION_CLOSED and resends; urllib3 calls it an
    SSLError, not a read error, so it is taken for one here. The retried request's time
    includes both attempts. Measured in CI: a login POST lost to an nginx reload failed the
    wrong-upstream drill's "no request lost" (twice: the second after the plain-close resend).
    Measured here, 12 keep-alive users over HTTP and HTTPS and 60 `nginx -s reload`s: without
    any resend 10 of 6 109 requests lost (9 plain closes or resets, 1 TLS EOF); with the
    plain-close resend only, 1 of 6 037 (a TLS EOF); with both, 0 of 6 405."""

    def _is_read_error(self, err: Exception) -> bool:
        return super()._is_read_error(err) or _tls_closed(err)

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: Any = None,
        error: Exception | None = None,
        _pool: Any = None,
        _stacktrace: Any = None,
    ) -> Retry:
        allowed = self.allowed_methods
        if (
            method is not None
            and isinstance(allowed, frozenset)
            and method not in allowed
            and error is not None
            and _unanswered(error)
        ):
            widened = self.new(allowed_methods=allowed | {method})
            return widened.increment(method, url, response, error, _pool, _stacktrace)
        return super().increment(method, url, response, error, _pool, _stacktrace)


def _unanswered(error: Exception) -> bool:
    """The connection closed before any byte of an answer: over TCP or over TLS."""
    closed = isinstance(error, ProtocolError) and any(
        isinstance(arg, _UNANSWERED) for arg in error.args
    )
    return closed or _tls_closed(error)


def _tls_closed(error: Exception) -> bool:
    return isinstance(error, SSLError) and any(isinstance(arg, _TLS_CLOSED) for arg in error.args)


REUSED_CONNECTION_RETRY = ReusedConnectionRetry(
    total=1, connect=0, read=1, redirect=0, status=0, other=0,
    allowed_methods=frozenset({"GET", "HEAD"}), raise_on_status=False,
)  # fmt: skip
_lock = threading.Lock()
_pending: list[dict[str, Any]] = []
_out: Any = None
_runner: list[Any] = [None]  # this process's runner, known at test start
_ENDPOINT = re.compile(r'data-chat-endpoint="([^"]+)"')


def _write(rows: list[dict[str, Any]]) -> None:
    global _out
    if _out is None:
        _out = open(os.environ["LOAD_SAMPLES_FILE"], "a", buffering=1)  # noqa: SIM115
    _out.write("".join(json.dumps(row, separators=(",", ":")) + "\n" for row in rows))


@events.init.add_listener
def _on_init(environment: Environment, **_: Any) -> None:
    if isinstance(environment.runner, MasterRunner):
        environment.runner.register_message(SAMPLES_MESSAGE, lambda msg, **_: _write(msg.data))
    if isinstance(environment.runner, WorkerRunner):
        runner = environment.runner

        def ship() -> None:
            while True:
                time.sleep(0.2)
                with _lock:
                    batch = _pending[:]
                    _pending.clear()
                if batch:
                    runner.send_message(SAMPLES_MESSAGE, batch)

        threading.Thread(target=ship, daemon=True).start()


@events.request.add_listener
def _on_request(
    request_type: str,
    name: str,
    response_time: float,
    response: Any = None,
    exception: BaseException | None = None,
    context: dict[str, Any] | None = None,
    **_: Any,
) -> None:
    latency = response_time / 1000.0
    status = getattr(response, "status_code", None) if response is not None else None
    row = {
        "t": round(time.time() - latency, 6),
        "j": name,
        "s": round(latency, 6),
        "ok": exception is None,
        "st": status or None,
        "e": None if exception is None else str(exception)[:160],
    }
    runner = _runner[0]
    if isinstance(runner, WorkerRunner):
        with _lock:
            _pending.append(row)
    else:
        with _lock:
            _write([row])


@events.test_start.add_listener
def _remember_runner(environment: Environment, **_: Any) -> None:
    _runner[0] = environment.runner


class SafePsyUser(HttpUser):
    """A person using SafePsy: reads the page, logs in, looks at DIDs, talks to the assistant."""

    wait_time = between(0.05, 0.25)

    def on_start(self) -> None:
        ca = os.environ.get("LOAD_CA_FILE")
        self.client.verify = ca if ca else True
        self.client.trust_env = False
        for adapter in self.client.adapters.values():
            adapter.max_retries = REUSED_CONNECTION_RETRY
        self.tls_url = os.environ.get("LOAD_FRONTEND_TLS_URL") or self.host
        self.email = os.environ["LOAD_TEST_EMAIL"]
        self.password = os.environ["LOAD_TEST_PASSWORD"]
        self.did = os.environ.get("LOAD_TEST_DID") or ""
        self.conversation = str(uuid.uuid4())
        self.token: str | None = None  # the signed-in session this user keeps

    def _base(self) -> str:
        """Half the users' requests go over HTTPS, as browsers that upgraded would."""
        return self.tls_url if random.random() < 0.5 else str(self.host)

    def _expect(self, name: str, method: str, path: str, check: str, **kwargs: Any) -> None:
        """One request; failed unless 2xx and the JSON body has the field `check`."""
        with self.client.request(
            method, self._base() + path, name=name, catch_response=True, **kwargs
        ) as resp:
            if resp.status_code // 100 != 2:
                resp.failure(f"HTTP {resp.status_code}: {resp.text[:120]}")
                return
            try:
                body = resp.json()
            except ValueError:
                resp.failure("not JSON")
                return
            if not isinstance(body, dict) or not body.get(check):
                resp.failure(f"no {check!r} in the answer")

    @task(10)
    def landing_page(self) -> None:
        with self.client.get(self._base() + "/", name="page /", catch_response=True) as resp:
            if resp.status_code != 200 or "SafePsy" not in resp.text:
                resp.failure(f"HTTP {resp.status_code}: not the SafePsy page")

    @task(8)
    def login(self) -> None:
        body = {"email": self.email, "password": self.password}
        self._expect("login", "POST", "/api/auth/login", "token", json=body)

    @task(1)
    def login_as_typed(self) -> None:
        """Some people type their address with capitals; SafePsy has always accepted that."""
        typed = self.email[:1].upper() + self.email[1:]
        body = {"email": typed, "password": self.password}
        self._expect("login (e-mail as typed)", "POST", "/api/auth/login", "token", json=body)

    @task(8)
    def signed_in(self) -> None:
        """A signed-in page asks who its user is (GET /api/auth/me). Like a browser, the user
        keeps one session: signs in when it has none or is told to (401), and keeps it
        through a server error (5xx), which is the server's fault, not the session's."""
        if self.token is None:
            body = {"email": self.email, "password": self.password}
            with self.client.request(
                "POST", self._base() + "/api/auth/login", name="sign in (for the session)",
                json=body, catch_response=True,
            ) as resp:  # fmt: skip
                if resp.status_code != 200:
                    resp.failure(f"HTTP {resp.status_code}: {resp.text[:120]}")
                    return
                self.token = resp.json().get("token")
        headers = {"Authorization": f"Bearer {self.token}"}
        with self.client.request(
            "GET", self._base() + "/api/auth/me", name="signed-in page", headers=headers,
            catch_response=True,
        ) as resp:  # fmt: skip
            if resp.status_code == 401:
                self.token = None
            if resp.status_code != 200:
                resp.failure(f"HTTP {resp.status_code}: {resp.text[:120]}")

    @task(4)
    def did_health(self) -> None:
        self._expect("DID health", "GET", "/api/did/health", "status")

    @task(5)
    def did_resolve(self) -> None:
        if self.did:
            self._expect("DID resolve", "GET", f"/api/did/resolve/{self.did}", "document")

    @task(3)
    def chat(self) -> None:
        body = {"message": "I feel a bit anxious today", "conversationId": self.conversation}
        self._expect("chat", "POST", "/api/chat", "reply", json=body)

    @task(1)
    def chat_from_the_page(self) -> None:
        """What the page's chat box does: post to the endpoint the page itself names."""
        page = self.client.get(self._base() + "/", name="page / (chat box)")
        found = _ENDPOINT.search(page.text or "")
        endpoint = found.group(1) if found else "/api/chat"
        self._expect("chat (page chat box)", "POST", endpoint, "reply", json={"message": "Hello"})
