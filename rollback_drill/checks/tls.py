"""The runbook's "Verify SSL" (`openssl s_client -connect localhost:443 -servername ...`):
the handshake verifies against the expected CA, the name matches, and it is not near expiry."""

from __future__ import annotations

import socket
import ssl
import time
from urllib.parse import urlsplit

from rollback_drill.checks.http import ssl_context
from rollback_drill.checks.result import Check, CheckResult, CheckSkipped
from rollback_drill.target import Target

MIN_DAYS_LEFT = 7


def _name(parts: object) -> str:
    """`getpeercert()`'s nested RDN tuples as `CN=...,O=...`."""
    if not isinstance(parts, tuple):
        return ""
    return ",".join(f"{k}={v}" for rdn in parts for k, v in rdn)


def _certificate(target: Target) -> CheckResult:
    if not target.frontend_tls_url:
        raise CheckSkipped("target has no frontend_tls URL")
    parts = urlsplit(target.frontend_tls_url)
    host = parts.hostname or "localhost"
    port = parts.port or 443
    server_name = target.server_name or host
    context = ssl_context(str(target.ca_file) if target.ca_file else None)
    try:
        with (
            socket.create_connection(
                (host, port), timeout=target.thresholds.request_timeout_s
            ) as raw,
            context.wrap_socket(raw, server_hostname=server_name) as conn,
        ):
            cert = conn.getpeercert()
            protocol = conn.version()
    except ConnectionRefusedError:
        return CheckResult("tls.certificate", False, f"{host}:{port}: connection refused")
    except TimeoutError:
        return CheckResult(
            "tls.certificate",
            False,
            f"{host}:{port}: no handshake within {target.thresholds.request_timeout_s:g} s",
        )
    if not cert:
        return CheckResult("tls.certificate", False, f"{server_name}: no certificate presented")
    not_after = str(cert["notAfter"])
    days_left = int((ssl.cert_time_to_seconds(not_after) - time.time()) // 86400)
    ok = days_left >= MIN_DAYS_LEFT
    summary = f"{server_name}: verified, {protocol}, expires in {days_left} days"
    if not ok:
        summary += f" (less than {MIN_DAYS_LEFT})"
    return CheckResult(
        "tls.certificate",
        ok,
        summary,
        {
            "server_name": server_name,
            "protocol": protocol,
            "subject": _name(cert.get("subject")),
            "issuer": _name(cert.get("issuer")),
            "not_after": not_after,
            "days_left": days_left,
        },
    )


CHECKS = [
    Check("tls.certificate", "tls", _certificate, doc="openssl s_client -connect localhost:443")
]
