"""The runbook's "Verify SSL" (`openssl s_client -connect localhost:443 -servername ...`):
the handshake verifies against the expected CA, the name matches, and it is not near expiry."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
from urllib.parse import urlsplit

from cryptography import x509

from rollback_drill.checks.result import Check, CheckResult, CheckSkipped
from rollback_drill.target import Target

MIN_DAYS_LEFT = 7


def _certificate(target: Target) -> CheckResult:
    if not target.frontend_tls_url:
        raise CheckSkipped("target has no frontend_tls URL")
    parts = urlsplit(target.frontend_tls_url)
    host = parts.hostname or "localhost"
    port = parts.port or 443
    server_name = target.server_name or host
    context = ssl.create_default_context(cafile=str(target.ca_file) if target.ca_file else None)
    with (
        socket.create_connection((host, port), timeout=target.thresholds.request_timeout_s) as raw,
        context.wrap_socket(raw, server_hostname=server_name) as conn,
    ):
        der = conn.getpeercert(binary_form=True)
        protocol = conn.version()
    assert der is not None
    cert = x509.load_der_x509_certificate(der)
    days_left = (cert.not_valid_after_utc - dt.datetime.now(dt.UTC)).days
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
            "subject": cert.subject.rfc4514_string(),
            "issuer": cert.issuer.rfc4514_string(),
            "not_after": cert.not_valid_after_utc.isoformat(),
            "days_left": days_left,
        },
    )


CHECKS = [
    Check("tls.certificate", "tls", _certificate, doc="openssl s_client -connect localhost:443")
]
