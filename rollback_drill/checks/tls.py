"""The runbook's "Verify SSL" (`openssl s_client -connect localhost:443 -servername ...`):
the handshake verifies against the expected CA, the name matches, it is not near expiry, and
the server holds the key of the certificate it presents.

When the verified handshake fails, the certificate is fetched again without verification and
each property judged on its own, so the result says which one broke (expired, issued for
another name, not from the expected CA) instead of one OpenSSL error string. The same
judgement applies to a certificate and key on disk (`inspect_files`): the SSL rollback checks
what it restored before nginx loads it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from rollback_drill.checks.http import pinned_context
from rollback_drill.checks.result import Check, CheckResult
from rollback_drill.process import lazy
from rollback_drill.process.errors import CheckSkipped
from rollback_drill.stack.target import Target

if TYPE_CHECKING:  # cryptography loads when a certificate is read, not with every check
    from cryptography import x509

MIN_DAYS_LEFT = 7


@dataclass(frozen=True)
class CertificateReport:
    """Each property of a server certificate judged on its own. None: could not be judged."""

    subject: str
    names: list[str]
    not_after: dt.datetime
    days_left: int
    expired: bool
    chain_ok: bool | None
    name_ok: bool
    key_matches: bool | None
    chain_error: str = ""
    server_name: str = ""

    @property
    def can_serve(self) -> bool:
        """Clients that verify will accept it, and nginx will load it (expiring soon is a
        warning, not a reason to refuse)."""
        return bool(self.chain_ok and self.name_ok and not self.expired and self.key_matches)

    def problems(self) -> list[str]:
        found = []
        if self.chain_ok is False:
            found.append(f"chain does not verify against the expected CA ({self.chain_error})")
        if self.chain_ok is None:
            found.append(f"chain not verified ({self.chain_error or 'no CA to verify against'})")
        if not self.name_ok:
            found.append(f"issued for {self.names}, not for {self.server_name}")
        if self.expired:
            found.append(f"expired on {self.not_after:%Y-%m-%d %H:%M} UTC")
        elif self.days_left < MIN_DAYS_LEFT:
            found.append(f"expires in {self.days_left} days (less than {MIN_DAYS_LEFT})")
        if self.key_matches is False:
            found.append("the private key does not match the certificate")
        if self.key_matches is None:
            found.append("not shown that the key matches the certificate")
        return found

    def to_json(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "names": self.names,
            "server_name": self.server_name,
            "not_after": self.not_after.isoformat(),
            "days_left": self.days_left,
            "chain_verified": self.chain_ok,
            "chain_error": self.chain_error or None,
            "name_matches": self.name_ok,
            "expired": self.expired,
            "key_matches": self.key_matches,
        }


def _names(cert: x509.Certificate) -> list[str]:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return [*san.get_values_for_type(x509.DNSName),
            *(str(ip) for ip in san.get_values_for_type(x509.IPAddress))]  # fmt: skip


def _matches(name: str, pattern: str) -> bool:
    name, pattern = name.lower(), pattern.lower()
    if pattern.startswith("*."):
        head, _, rest = name.partition(".")
        return bool(head) and rest == pattern[2:]
    return name == pattern


def _chain(leaf: x509.Certificate, ca_file: Path | None) -> tuple[bool | None, str]:
    from cryptography import x509

    if ca_file is None:
        return None, "no CA file given"
    try:
        ca = x509.load_pem_x509_certificate(ca_file.read_bytes())
        leaf.verify_directly_issued_by(ca)
    except OSError as exc:
        return None, f"cannot read {ca_file}: {exc.strerror}"
    except (ValueError, TypeError) as exc:
        return False, f"not signed by {ca.subject.rfc4514_string()}: {exc}"
    except Exception as exc:  # InvalidSignature carries no message
        return False, f"not signed by the expected CA ({type(exc).__name__})"
    return True, ""


def judge(
    leaf: x509.Certificate,
    server_name: str,
    ca_file: Path | None,
    key_matches: bool | None,
    now: dt.datetime | None = None,
) -> CertificateReport:
    now = now or dt.datetime.now(dt.UTC)
    not_after = leaf.not_valid_after_utc
    names = _names(leaf)
    chain_ok, chain_error = _chain(leaf, ca_file)
    return CertificateReport(
        subject=leaf.subject.rfc4514_string(),
        names=names,
        not_after=not_after,
        days_left=int((not_after - now).total_seconds() // 86400),
        expired=not_after <= now or leaf.not_valid_before_utc > now,
        chain_ok=chain_ok,
        name_ok=any(_matches(server_name, n) for n in names),
        key_matches=key_matches,
        chain_error=chain_error,
        server_name=server_name,
    )


_SHORT_NAMES = {
    "commonName": "CN",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "countryName": "C",
    "stateOrProvinceName": "ST",
    "localityName": "L",
}


def _subject(decoded: dict[str, Any]) -> str:
    """The subject as RFC 4514 writes it (last RDN first), from `ssl`'s decoded form."""
    rdns = [
        "+".join(f"{_SHORT_NAMES.get(k, k)}={v}" for k, v in rdn)
        for rdn in decoded.get("subject", ())
    ]
    return ",".join(reversed(rdns))


def from_handshake(
    decoded: dict[str, Any], server_name: str, now: dt.datetime | None = None
) -> CertificateReport:
    """The certificate of a handshake that verified, as `ssl` decoded it. OpenSSL has shown
    the chain up to a CA the context trusts (the target's `ca_file`, else the system's
    store: a certificate from a public CA needs no `ca_file`), the name (the context checks
    host names) and the server's hold of the key (it signed the handshake); what is left to
    judge is how long the certificate has left. No cryptography import: the healthy case is
    every verify run's, and that import costs it 0.07 s of CPU (`_load_der` serves the case
    that did not verify)."""
    now = now or dt.datetime.now(dt.UTC)

    def moment(field: str) -> dt.datetime:
        return dt.datetime.fromtimestamp(ssl.cert_time_to_seconds(decoded[field]), dt.UTC)

    not_after = moment("notAfter")
    names = [
        value for kind, value in decoded.get("subjectAltName", ()) if kind in ("DNS", "IP Address")
    ]
    if not names:
        names = [v for rdn in decoded.get("subject", ()) for k, v in rdn if k == "commonName"]
    return CertificateReport(
        subject=_subject(decoded),
        names=names,
        not_after=not_after,
        days_left=int((not_after - now).total_seconds() // 86400),
        expired=not_after <= now or moment("notBefore") > now,
        chain_ok=True,
        name_ok=True,
        key_matches=True,
        server_name=server_name,
    )


def inspect_files(
    cert_file: Path, key_file: Path, ca_file: Path | None, server_name: str
) -> CertificateReport:
    """A certificate (its first PEM block is the server's) and key on disk, judged before any
    server loads them. Raises ValueError naming the file that is not PEM."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        leaf = x509.load_pem_x509_certificate(cert_file.read_bytes())
    except ValueError as exc:
        raise ValueError(f"{cert_file}: not a PEM certificate ({exc})") from None
    try:
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{key_file}: not an unencrypted PEM private key ({exc})") from None
    public = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    matches = key.public_key().public_bytes(*public) == leaf.public_key().public_bytes(*public)
    return judge(leaf, server_name, ca_file, matches)


def _served(host: str, port: int, server_name: str, timeout_s: float) -> x509.Certificate | None:
    """The certificate the server presents, fetched without verifying it."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection((host, port), timeout=timeout_s) as raw,
        context.wrap_socket(raw, server_hostname=server_name) as conn,
    ):
        der = conn.getpeercert(binary_form=True)
    return _load_der(der) if der else None


def _load_der(der: bytes) -> x509.Certificate:
    with lazy.imports():
        from cryptography import x509
    return x509.load_der_x509_certificate(der)


def _certificate(target: Target) -> CheckResult:
    if not target.frontend_tls_url:
        raise CheckSkipped("target has no frontend_tls URL")
    parts = urlsplit(target.frontend_tls_url)
    host = parts.hostname or "localhost"
    port = parts.port or 443
    server_name = target.server_name or host
    timeout_s = target.thresholds.request_timeout_s
    context = pinned_context(str(target.ca_file) if target.ca_file else None)
    verify_error = ""
    protocol = None
    decoded: dict[str, Any] | None = None
    try:
        with (
            socket.create_connection((host, port), timeout=timeout_s) as raw,
            context.wrap_socket(raw, server_hostname=server_name) as conn,
        ):
            decoded = conn.getpeercert()  # a verified handshake's certificate, decoded
            protocol = conn.version()
    except ConnectionRefusedError:
        return CheckResult("tls.certificate", False, f"{host}:{port}: connection refused")
    except TimeoutError:
        return CheckResult(
            "tls.certificate", False, f"{host}:{port}: no handshake within {timeout_s:g} s"
        )
    except ssl.SSLCertVerificationError as exc:
        verify_error = exc.verify_message or str(exc)
    if decoded:
        report = from_handshake(decoded, server_name)
    else:
        leaf = _served(host, port, server_name, timeout_s)
        if leaf is None:
            return CheckResult("tls.certificate", False, f"{server_name}: no certificate presented")
        report = judge(leaf, server_name, target.ca_file, None)
        if target.ca_file is None and verify_error:  # the system's store was asked, and said
            report = dataclasses.replace(
                report, chain_error=f"no CA file given; the system's CA store: {verify_error}"
            )
    problems = report.problems()
    ok = not problems and bool(decoded)
    summary = (
        f"{server_name}: verified, {protocol}, expires in {report.days_left} days"
        if ok
        else f"{server_name}: " + "; ".join(problems or [verify_error])
    )
    evidence = {
        **report.to_json(),
        "protocol": protocol,
        "handshake_error": verify_error or None,
        "trusted_ca": str(target.ca_file) if target.ca_file else "the system's CA store",
    }
    return CheckResult("tls.certificate", ok, summary, evidence)


CHECKS = [
    Check("tls.certificate", "tls", _certificate, doc="openssl s_client -connect localhost:443")
]
