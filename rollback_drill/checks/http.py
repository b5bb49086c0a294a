"""One HTTP client setup for every check: the target's timeout, its CA for https, no proxies
from the environment (checks must hit exactly the URL the target names), keep-alive within a
check, and failures said for what they are: refused, timed out, TLS - not "took 5.00 s".

Built on the standard library's http.client: a verify run sends a few hundred requests on a
machine whose cores the servers under test need, and a lighter client per request (and no
client import) is most of the difference between a fraction of a second and a second.
"""

from __future__ import annotations

import http.client
import json
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from rollback_drill.process.errors import HttpFailure
from rollback_drill.stack.target import Target

MAX_TEXT = 4000


@dataclass(frozen=True)
class Response:
    status: int
    body: Any
    text: str
    seconds: float
    headers: Mapping[str, str] = field(default_factory=dict)  # names lower-cased


@lru_cache(maxsize=8)
def ssl_context(ca_file: str | None) -> ssl.SSLContext:
    """What users' clients trust: the system's CA store, and the target's own CA when it
    names one. A private CA for some of a target's URLs leaves the others public (internal
    service URLs under the company's CA, the public frontend under a public one): trusting
    the named CA alone failed every request to the public ones. Loading the CAs costs
    milliseconds; every request of a run shares one context per CA."""
    context = ssl.create_default_context()
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    return context


@lru_cache(maxsize=8)
def pinned_context(ca_file: str | None) -> ssl.SSLContext:
    """The target's CA alone (the system's store when it names none): what `tls.certificate`
    holds the frontend's chain to - a certificate from another CA that users' clients would
    also accept is still not the one the target expects."""
    return ssl.create_default_context(cafile=ca_file)


def classify(exc: BaseException, timeout_s: float) -> tuple[str, str]:
    """(kind, one-line detail) of a transport failure."""
    if isinstance(exc, ConnectionRefusedError):
        return "refused", "connection refused (nothing listens there)"
    if isinstance(exc, TimeoutError):
        return "timeout", f"no answer within {timeout_s:g} s (timed out)"
    if isinstance(exc, ssl.SSLError):
        return "tls", f"TLS failed: {exc}"
    if isinstance(exc, http.client.HTTPException | ConnectionError):
        return "protocol", f"the server broke the HTTP exchange: {type(exc).__name__}: {exc}"
    return "network", f"{type(exc).__name__}: {exc}"


USER_AGENT = "rollback-drill"
"""What every request says it is; a sampled request adds its own tag, so the server's log
line of that very request can be found (`checks.servertime`)."""


class Client:
    """Keep-alive connections per origin, for one thread (a check or a sampling worker)."""

    def __init__(self, target: Target) -> None:
        self.timeout_s = target.thresholds.request_timeout_s
        self._ca = str(target.ca_file) if target.ca_file else None
        self._conns: dict[tuple[str, str, int], http.client.HTTPConnection] = {}

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for conn in self._conns.values():
            conn.close()
        self._conns.clear()

    def _conn(self, scheme: str, host: str, port: int) -> http.client.HTTPConnection:
        key = (scheme, host, port)
        conn = self._conns.get(key)
        if conn is None:
            if scheme == "https":
                conn = http.client.HTTPSConnection(
                    host, port, timeout=self.timeout_s, context=ssl_context(self._ca)
                )
            else:
                conn = http.client.HTTPConnection(host, port, timeout=self.timeout_s)
            self._conns[key] = conn
        return conn

    def request(
        self,
        method: str,
        url: str,
        json_body: Any = None,
        max_text: int = MAX_TEXT,
        user_agent: str = USER_AGENT,
    ) -> Response:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        port = parts.port or (443 if scheme == "https" else 80)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        headers = {"Accept": "application/json, text/html", "User-Agent": user_agent}
        body = None
        if json_body is not None:
            body = json.dumps(json_body).encode()
            headers["Content-Type"] = "application/json"
        conn = self._conn(scheme, parts.hostname or "localhost", port)
        start = time.monotonic()
        reused = conn.sock is not None
        while True:
            try:
                conn.request(method, path, body=body, headers=headers)
                resp = conn.getresponse()
                raw = resp.read()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                conn.close()
                if not reused:
                    raise self._failure(exc, url, start) from None
                reused = False  # the server closed an idle keep-alive connection: once more
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                raise self._failure(exc, url, start) from None
        seconds = time.monotonic() - start
        if resp.getheader("Connection", "").lower() == "close":
            conn.close()
        text = raw.decode(errors="replace")
        try:
            parsed: Any = json.loads(text) if text[:1] in "{[" else None
        except ValueError:
            parsed = None
        headers = {name.lower(): value for name, value in resp.getheaders()}
        return Response(resp.status, parsed, text[:max_text], seconds, headers)

    def _failure(self, exc: BaseException, url: str, start: float) -> HttpFailure:
        kind, detail = classify(exc, self.timeout_s)
        return HttpFailure(kind, url, detail, time.monotonic() - start)


def client(target: Target) -> Client:
    return Client(target)


def request(
    target: Target,
    method: str,
    url: str,
    http: Client | None = None,
    json: Any = None,
    max_text: int = MAX_TEXT,
) -> Response:
    """One request; raises HttpFailure when no HTTP answer came back. `max_text`: how much of
    the body's text to keep (a page searched for markup needs all of it)."""
    if http is not None:
        return http.request(method, url, json, max_text)
    with Client(target) as own:
        return own.request(method, url, json, max_text)


def evidence(resp: Response, url: str) -> dict[str, Any]:
    return {
        "url": url,
        "status": resp.status,
        "seconds": round(resp.seconds, 4),
        "body": resp.body if resp.body is not None else resp.text[:500],
    }


__all__ = ["Client", "HttpFailure", "Response", "client", "evidence", "request"]
