"""Real receivers on 127.0.0.1 for the communication plan's channels: an HTTP server that
records every request (webhook, PagerDuty Events API, status page) and an SMTP server
(aiosmtpd) that keeps every message, optionally with STARTTLS and a login."""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from rollback_drill.process.proc import free_port


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.time() on arrival

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class HttpReceiver:
    """Records each POST; answers `status` (per path prefix when `answers` names it)."""

    port: int = 0
    requests: list[Received] = field(default_factory=list)
    answers: dict[str, tuple[int, str]] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def on(self, path: str) -> list[Received]:
        return [r for r in self.requests if r.path == path]


@contextmanager
def http_receiver() -> Iterator[HttpReceiver]:
    receiver = HttpReceiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            receiver.requests.append(Received(self.path, dict(self.headers), body, time.time()))
            status, text = next(
                (v for k, v in receiver.answers.items() if self.path.startswith(k)),
                (202, '{"status": "success"}'),
            )
            payload = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@dataclass
class SmtpReceiver:
    port: int = 0
    messages: list[Message] = field(default_factory=list)
    envelopes: list[tuple[str, list[str], float]] = field(default_factory=list)  # from, to, at
    logins: list[str] = field(default_factory=list)


class _Keep:
    def __init__(self, receiver: SmtpReceiver) -> None:
        self.receiver = receiver

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        self.receiver.messages.append(message_from_bytes(content))
        self.receiver.envelopes.append(
            (str(envelope.mail_from), [str(r) for r in envelope.rcpt_tos], time.time())
        )
        return "250 OK"


@contextmanager
def smtp_receiver(
    *, tls: ssl.SSLContext | None = None, password: str | None = None
) -> Iterator[SmtpReceiver]:
    """With `tls`, STARTTLS is offered and required; with `password`, a login is required."""
    receiver = SmtpReceiver()

    def authenticate(
        server: SMTPServer, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and data.password.decode() == password
        if ok:
            receiver.logins.append(data.login.decode())
        return AuthResult(success=ok, handled=False)

    extra: dict[str, Any] = {}
    if tls is not None:
        extra.update(tls_context=tls, require_starttls=True)
    if password is not None:
        extra.update(authenticator=authenticate, auth_required=True)
    receiver.port = free_port()
    controller = Controller(_Keep(receiver), hostname="127.0.0.1", port=receiver.port, **extra)
    controller.start()
    try:
        yield receiver
    finally:
        controller.stop()
