"""One HTTP client setup for every check: the target's timeout, its CA for https, no proxies
from the environment (checks must hit exactly the URL the target names)."""

from __future__ import annotations

import ssl
import time
from dataclasses import dataclass
from typing import Any

import httpx

from rollback_drill.target import Target


@dataclass(frozen=True)
class Response:
    status: int
    body: Any
    text: str
    seconds: float


def _verify(target: Target) -> ssl.SSLContext | bool:
    if target.ca_file is None:
        return True
    return ssl.create_default_context(cafile=str(target.ca_file))


def request(target: Target, method: str, url: str, **kwargs: Any) -> Response:
    with httpx.Client(
        timeout=target.thresholds.request_timeout_s, verify=_verify(target), trust_env=False
    ) as client:
        start = time.monotonic()
        resp = client.request(method, url, **kwargs)
        seconds = time.monotonic() - start
    try:
        body: Any = resp.json()
    except ValueError:
        body = None
    return Response(resp.status_code, body, resp.text[:2000], seconds)


def evidence(resp: Response, url: str) -> dict[str, Any]:
    return {
        "url": url,
        "status": resp.status,
        "seconds": round(resp.seconds, 4),
        "body": resp.body if resp.body is not None else resp.text[:500],
    }
