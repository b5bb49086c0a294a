"""The SSL rollback's gate: a certificate and key on disk judged property by property (chain,
name, expiry, key matching the certificate), each shown to fail on its own with real
certificates from the stack's kind of CA."""

from __future__ import annotations

import contextlib
import datetime as dt
import socket
import ssl
import threading
from pathlib import Path
from typing import Any

import pytest

from rollback_drill.checks.tls import from_handshake, inspect_files
from rollback_drill.stack import tls

NAME = "safepsy.local"


@pytest.fixture
def certs(tmp_path: Path) -> tls.CertSet:
    return tls.issue(tmp_path / "ssl", NAME)


def _install(directory: Path, cert: bytes, key: bytes) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "c.crt").write_bytes(cert)
    (directory / "k.key").write_bytes(key)
    return directory / "c.crt", directory / "k.key"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def test_the_issued_pair_can_serve(certs: tls.CertSet) -> None:
    report = inspect_files(certs.cert_file, certs.key_file, certs.ca_file, NAME)
    assert report.can_serve and report.problems() == []
    assert report.chain_ok and report.name_ok and report.key_matches and not report.expired


def test_expired(certs: tls.CertSet, tmp_path: Path) -> None:
    pem = tls.issue_from(certs, [NAME], _now() - dt.timedelta(days=60), _now() - dt.timedelta(1))
    report = inspect_files(*_install(tmp_path / "x", *pem), certs.ca_file, NAME)
    assert not report.can_serve and report.expired
    assert report.chain_ok and report.name_ok and report.key_matches  # only expiry is wrong
    assert any("expired on" in p for p in report.problems())


def test_issued_for_another_name(certs: tls.CertSet, tmp_path: Path) -> None:
    pem = tls.issue_from(certs, ["www.other.example"], _now(), _now() + dt.timedelta(days=30))
    report = inspect_files(*_install(tmp_path / "x", *pem), certs.ca_file, NAME)
    assert not report.can_serve and not report.name_ok and report.chain_ok
    assert any("not for safepsy.local" in p for p in report.problems())


def test_a_key_that_does_not_match(certs: tls.CertSet, tmp_path: Path) -> None:
    cert, key = _install(tmp_path / "x", certs.cert_file.read_bytes(), tls.new_key_pem())
    report = inspect_files(cert, key, certs.ca_file, NAME)
    assert report.key_matches is False and not report.can_serve
    assert "the private key does not match the certificate" in report.problems()


def test_from_another_ca(certs: tls.CertSet, tmp_path: Path) -> None:
    rogue = tls.issue(tmp_path / "rogue", NAME)
    report = inspect_files(rogue.cert_file, rogue.key_file, certs.ca_file, NAME)
    assert report.chain_ok is False and not report.can_serve
    assert any("chain does not verify" in p for p in report.problems())


def test_near_expiry_warns_but_can_serve(certs: tls.CertSet, tmp_path: Path) -> None:
    pem = tls.issue_from(certs, [NAME], _now(), _now() + dt.timedelta(days=3))
    report = inspect_files(*_install(tmp_path / "x", *pem), certs.ca_file, NAME)
    assert report.can_serve
    assert any("expires in" in p for p in report.problems())


def test_not_pem_names_the_file(certs: tls.CertSet, tmp_path: Path) -> None:
    cert, key = _install(tmp_path / "x", b"garbage", certs.key_file.read_bytes())
    with pytest.raises(ValueError, match=r"c\.crt: not a PEM certificate"):
        inspect_files(cert, key, certs.ca_file, NAME)


def test_issuing_needs_the_ca_key(certs: tls.CertSet) -> None:
    keyless = tls.CertSet(certs.ca_file, certs.cert_file, certs.key_file, NAME, certs.not_after)
    with pytest.raises(ValueError, match="the CA's key is not at hand"):
        tls.issue_from(keyless, [NAME], _now(), _now() + dt.timedelta(days=1))


def _handshake(ca_file: Path, cert_file: Path, key_file: Path) -> dict[str, Any]:
    """The decoded certificate of a verified handshake with a real TLS server on 127.0.0.1."""
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert_file, key_file)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def serve() -> None:
            conn, _ = listener.accept()
            with contextlib.suppress(OSError), server_context.wrap_socket(conn, server_side=True):
                pass

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        client = ssl.create_default_context(cafile=str(ca_file))
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
            client.wrap_socket(raw, server_hostname=NAME) as tls_conn,
        ):
            decoded = tls_conn.getpeercert()
        thread.join(timeout=5)
    assert decoded
    return decoded


def test_a_verified_handshake_is_judged_as_the_files_are(
    certs: tls.CertSet, tmp_path: Path
) -> None:
    """The verify run judges a handshake that verified from `ssl`'s decoding of it, without
    loading cryptography: it must read the same names and expiry as the files' judgement, and
    still fail a certificate that verifies but expires within a week."""
    pem = tls.issue_from(certs, [NAME], _now() - dt.timedelta(1), _now() + dt.timedelta(3, 3600))
    cert, key = _install(tmp_path / "soon", pem[0], pem[1])
    from_files = inspect_files(cert, key, certs.ca_file, NAME)
    served = from_handshake(_handshake(certs.ca_file, cert, key), NAME)
    assert served.names == from_files.names == [NAME, "127.0.0.1"]
    assert served.not_after == from_files.not_after and served.days_left == 3
    assert served.subject == from_files.subject
    assert served.problems() == ["expires in 3 days (less than 7)"] == from_files.problems()
    assert not served.expired and served.chain_ok and served.name_ok and served.key_matches
