"""Secrets hide from repr and format, and redact() scrubs them and URL credentials."""

from __future__ import annotations

from rollback_drill.process.secrets import Secret, public_url, redact


def test_secret_never_prints() -> None:
    secret = Secret("hunter2-very-secret")
    assert "hunter2" not in repr(secret)
    assert "hunter2" not in f"{secret}"
    assert "hunter2" not in str({"password": secret})
    assert secret.reveal() == "hunter2-very-secret"


def test_redact_known_values_and_url_passwords() -> None:
    Secret("s3cr3t-token-value")
    text = "token=s3cr3t-token-value uri=mongodb://admin:pa55word@db.example:27017/x"
    cleaned = redact(text)
    assert "s3cr3t-token-value" not in cleaned
    assert "pa55word" not in cleaned
    assert "mongodb://admin:***@db.example" in cleaned
    assert public_url("redis://:pw1234@127.0.0.1:6379/0") == "redis://:***@127.0.0.1:6379/0"
