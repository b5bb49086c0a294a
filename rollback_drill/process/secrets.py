"""Secrets that cannot leak by accident: the value hides from repr/str/format, and every
secret ever created is known to `redact`, which report and log writers run text through.
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path
from urllib.parse import urlsplit

_known: set[str] = set()
_lock = threading.Lock()
_URL_CREDENTIALS = re.compile(
    r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:@/\s]*):(?P<pw>[^@/\s]+)@"
)


class Secret:
    """A value read from the environment or a file, shown only on `reveal()`."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        remember(value)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def remember(value: str) -> None:
    """Register a secret value (and any password embedded in it, if it is a URL)."""
    if len(value) < 4:
        return
    with _lock:
        _known.add(value)
        parts = urlsplit(value) if "://" in value else None
        if parts is not None and parts.password and len(parts.password) >= 4:
            _known.add(parts.password)


def redact(text: str) -> str:
    """Replace every known secret and every user:password@ in URLs with ***."""
    with _lock:
        known = sorted(_known, key=len, reverse=True)
    for value in known:
        if value in text:
            text = text.replace(value, "***")
    return _URL_CREDENTIALS.sub(r"\g<scheme>\g<user>:***@", text)


def public_url(url: str) -> str:
    """A URL safe to print: credentials removed."""
    return _URL_CREDENTIALS.sub(r"\g<scheme>\g<user>:***@", url)


def write_private(path: Path, data: bytes) -> Path:
    """Write a file only its owner can read, from the first byte (no window in which it is
    world-readable, as chmod after writing leaves): keys, .env backups, archives of them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    path.chmod(0o600)  # the file may have existed with wider permissions
    return path
