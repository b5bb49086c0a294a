"""Redis spoken over a plain socket (RESP2): the few commands verify sends - AUTH, PING, SET,
GET, DEL, INFO, CONFIG GET - and their replies.

The redis client costs ~60 ms of CPU to import and a verify run's whole budget is under a
second, so the checks speak the protocol themselves; `stores.redis` (the real client) stays
for the drills' backups and restores.
"""

from __future__ import annotations

import socket
import ssl
import time
from dataclasses import dataclass
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

from rollback_drill.process.errors import RedisReplyError

Reply = str | int | None | list["Reply"]


def encode(*words: str) -> bytes:
    parts = [f"*{len(words)}\r\n".encode()]
    for word in words:
        data = word.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def _read(reader: BinaryIO) -> Reply:
    line = reader.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionError("redis closed the connection mid-reply")
    kind, rest = line[:1], line[1:-2].decode(errors="replace")
    if kind == b"+":
        return rest
    if kind == b"-":
        raise RedisReplyError(rest[:300])
    if kind == b":":
        return int(rest)
    if kind == b"$":
        size = int(rest)
        if size < 0:
            return None
        data = reader.read(size + 2)
        return data[:-2].decode(errors="replace")
    if kind == b"*":
        count = int(rest)
        return None if count < 0 else [_read(reader) for _ in range(count)]
    raise ConnectionError(f"not a RESP reply: {line[:40]!r}")


@dataclass
class Connection:
    """One connection, already authenticated when the URL carries credentials."""

    sock: socket.socket
    reader: BinaryIO
    auth_seconds: float = 0.0

    def command(self, *words: str) -> Reply:
        """The reply; RedisReplyError for an error reply."""
        self.sock.sendall(encode(*words))
        return _read(self.reader)

    def close(self) -> None:
        self.reader.close()
        self.sock.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(url: str, timeout_s: float, ca_file: str | None = None) -> Connection:
    """A connection to the redis the URL names (rediss: over TLS), AUTH sent when it carries
    a password, the database selected when it names one other than 0."""
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname or "localhost", parts.port or 6379), timeout_s)
    if parts.scheme == "rediss":
        context = ssl.create_default_context(cafile=ca_file)
        sock = context.wrap_socket(sock, server_hostname=parts.hostname)
    conn = Connection(sock, sock.makefile("rb"))
    try:
        if parts.password:
            user = [unquote(parts.username)] if parts.username else []
            started = time.monotonic()
            try:
                conn.command("AUTH", *user, unquote(parts.password))
            except RedisReplyError as exc:
                raise RedisReplyError(f"AUTH -> {exc}") from None
            conn.auth_seconds = time.monotonic() - started
        database = parts.path.strip("/")
        if database and database != "0":
            conn.command("SELECT", database)
    except BaseException:
        conn.close()
        raise
    return conn


def info(conn: Connection, *sections: str) -> dict[str, str]:
    """INFO's `field:value` lines of these sections, as a mapping."""
    found: dict[str, str] = {}
    for section in sections:
        text = conn.command("INFO", section)
        for line in str(text or "").splitlines():
            if ":" in line and not line.startswith("#"):
                key, value = line.split(":", 1)
                found[key] = value.strip()
    return found
