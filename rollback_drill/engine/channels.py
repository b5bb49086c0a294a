"""The transports of the communication plan: an HTTP POST of JSON (Slack-compatible webhooks,
PagerDuty's Events API v2, a status page) and a mail over SMTP, with each channel's secrets
read from the environment variable the stack file names. Every failure is a `DeliveryFailed`
whose text says what the receiver answered, with secrets redacted; what to send and when is
`notify`'s business."""

from __future__ import annotations

import os
import smtplib
import ssl
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from rollback_drill.files.programmespec import Channel, EmailChannel
from rollback_drill.process.errors import DeliveryFailed
from rollback_drill.process.secrets import Secret, redact, remember

MIN_TOKEN_LENGTH = 16  # a URL path tail this long may be a token: redacted wherever it shows


def channel_name(channel: Channel) -> str:
    return channel.name or channel.type


def secret(channel: Channel, field_name: str, variable: str | None) -> Secret:
    value = os.environ.get(variable or "")
    if not value:
        raise DeliveryFailed(
            f"environment variable {variable} (communication channel {channel_name(channel)}, "
            f"field {field_name}) is not set"
        )
    return Secret(value)


def url_secret(channel: Channel, field_name: str, variable: str | None) -> Secret:
    """A webhook or status-page URL: its path is the secret (Slack's /services/T/B/XXXX), so
    each tail of the path long enough to be a token is redacted too, should a receiver echo
    it back in an error."""
    url = secret(channel, field_name, variable)
    segments = urlsplit(url.reveal()).path.split("/")
    for i in range(len(segments)):
        tail = "/".join(segments[i:])
        if len(tail) >= MIN_TOKEN_LENGTH:
            remember(tail)
    return url


def post_json(url: Secret | str, payload: dict[str, Any], timeout_s: float, **headers: str) -> str:
    """POST JSON; any 2xx is delivered, anything else (or no answer) is not."""
    address = url.reveal() if isinstance(url, Secret) else url
    try:
        answer = httpx.post(address, json=payload, headers=headers, timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise DeliveryFailed(
            redact(f"no answer within {timeout_s:g} s: {type(exc).__name__}: {exc}")
        ) from None
    if not 200 <= answer.status_code < 300:
        raise DeliveryFailed(redact(f"HTTP {answer.status_code}: {answer.text[:200]}"))
    return f"HTTP {answer.status_code}"


def send_mail(channel: EmailChannel, mail: EmailMessage, root: Path) -> str:
    """Send over SMTP (`starttls`, `ssl` or `none`; a login when the channel names a user);
    a relative `ca_file` resolves against `root`, the stack file's folder."""
    password = (
        secret(channel, "password_env", channel.password_env) if channel.password_env else None
    )
    cafile = root / channel.ca_file if channel.ca_file else None
    if cafile is not None and not cafile.is_file():
        raise DeliveryFailed(f"ca_file {cafile} (channel {channel_name(channel)}) not found")
    try:
        context = ssl.create_default_context(cafile=str(cafile) if cafile else None)
        if channel.tls == "ssl":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                channel.host, channel.port, timeout=channel.timeout_s, context=context
            )
        else:
            smtp = smtplib.SMTP(channel.host, channel.port, timeout=channel.timeout_s)
        with smtp:
            if channel.tls == "starttls":
                smtp.starttls(context=context)
            if channel.username and password is not None:
                smtp.login(channel.username, password.reveal())
            refused = smtp.send_message(mail)
    except (OSError, smtplib.SMTPException) as exc:
        raise DeliveryFailed(
            redact(f"{channel.host}:{channel.port}: {type(exc).__name__}: {exc}")
        ) from None
    accepted = [a for a in channel.to if a not in refused]
    if refused:
        raise DeliveryFailed(f"refused recipients {sorted(refused)}; accepted {accepted}")
    return f"accepted by {channel.host}:{channel.port} for {', '.join(accepted)}"


__all__ = [
    "DeliveryFailed",
    "channel_name",
    "post_json",
    "secret",
    "send_mail",
    "url_secret",
]
