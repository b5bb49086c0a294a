"""Certificates for the reference stack's nginx: a throwaway CA and a server certificate
whose SAN covers the names clients use, so TLS checks verify the chain for real instead of
turning verification off.

The CA's key stays in memory (never written): drills of a certificate change use it to issue
the certificate an operator would get by mistake - expired, or for another name - from the
same CA, so exactly one thing is wrong with it.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from rollback_drill.process.secrets import write_private


@dataclass(frozen=True)
class CertSet:
    ca_file: Path
    cert_file: Path
    key_file: Path
    server_name: str
    not_after: dt.datetime
    ca_key: CertificateIssuerPrivateKeyTypes | None = field(default=None, repr=False)


def _name(common: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "rollback-drill"),
            x509.NameAttribute(NameOID.COMMON_NAME, common),
        ]
    )


def issue(directory: Path, server_name: str, days: int = 30) -> CertSet:
    """Write ca.crt, certificate.crt (leaf + CA chain) and private.key into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    not_after = now + dt.timedelta(days=days)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("rollback-drill test CA"))
        .issuer_name(_name("rollback-drill test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _leaf(ca_cert, ca_key, key, [server_name, "localhost"], now, not_after)
    pem = serialization.Encoding.PEM
    ca_file = directory / "ca.crt"
    cert_file = directory / "certificate.crt"
    key_file = directory / "private.key"
    ca_file.write_bytes(ca_cert.public_bytes(pem))
    cert_file.write_bytes(cert.public_bytes(pem) + ca_cert.public_bytes(pem))
    write_private(key_file, new_key_pem(key))
    return CertSet(ca_file, cert_file, key_file, server_name, not_after, ca_key)


def _leaf(
    ca_cert: x509.Certificate,
    ca_key: CertificateIssuerPrivateKeyTypes,
    key: ec.EllipticCurvePrivateKey,
    names: list[str],
    not_before: dt.datetime,
    not_after: dt.datetime,
) -> x509.Certificate:
    """A server certificate for `names` (and 127.0.0.1), signed by the CA."""
    san = x509.SubjectAlternativeName(
        [*(x509.DNSName(n) for n in names), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    )
    return (
        x509.CertificateBuilder()
        .subject_name(_name(names[0]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(san, critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )


def issue_from(
    certs: CertSet,
    names: list[str],
    not_before: dt.datetime,
    not_after: dt.datetime,
) -> tuple[bytes, bytes]:
    """Another server certificate from the stack's own CA: (certificate + CA chain, key) as
    PEM, for an operator's certificate change in a drill. Writes nothing."""
    if certs.ca_key is None:
        raise ValueError(f"{certs.ca_file}: the CA's key is not at hand; cannot issue from it")
    ca_pem = certs.ca_file.read_bytes()
    ca_cert = x509.load_pem_x509_certificate(ca_pem)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _leaf(ca_cert, certs.ca_key, key, names, not_before, not_after)
    pem = serialization.Encoding.PEM
    return cert.public_bytes(pem) + ca_pem, new_key_pem(key)


def new_key_pem(key: ec.EllipticCurvePrivateKey | None = None) -> bytes:
    """A private key as unencrypted PKCS#8 PEM (a fresh one unless given)."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
