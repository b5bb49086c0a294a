"""Redis: probes that fail fast, a logical backup (DUMP/RESTORE, portable across backends),
the runbook's FLUSHALL, and what an RDB file (`dump.rdb`, the team's own Redis backup) holds.

An RDB file is read by a real redis-server, never by hand: `rdb_contents` loads it into a
scratch server of its own (a private folder, a unix socket, no TCP port, no saving) and reads
every key's DUMP payload; a server that refuses the file (bad magic, bad checksum, a newer
RDB version) is named with its log line. The stack restores the file by stopping its server,
placing the file as its `dbfilename` in its `dir` and starting it; `contents` read from it
afterwards must equal what the scratch server read.

redis-py 8's default retry policy takes ~4 s to report a refused connection, so every client
here is built with retries off: "is it down" must be answered within the caller's timeout.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from rollback_drill.files.storebackup import (
    REDIS_FORMAT,
    BackupManifestError,
    RedisArchive,
    RedisEntry,
    entries_sha256,
    load_redis,
)
from rollback_drill.process import proc
from rollback_drill.process.errors import StoreError
from rollback_drill.process.tools import find_tool

FORMAT = REDIS_FORMAT  # the archive's model: files.storebackup.RedisArchive


def connect(url: str, timeout_s: float = 2.0) -> redis.Redis:
    return redis.Redis.from_url(
        url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),
        retry_on_timeout=False,
    )


def ping(url: str, timeout_s: float = 2.0) -> float:
    """Round-trip time of PING in seconds; raises redis.RedisError when it does not answer."""
    conn = connect(url, timeout_s)
    try:
        start = time.monotonic()
        if not conn.ping():
            raise redis.RedisError("PING did not answer PONG")
        return time.monotonic() - start
    finally:
        conn.close()


def backup(url: str, dest: Path, timeout_s: float = 5.0) -> Path:
    """Every key with its TTL as DUMP payloads in one JSON file with a checksum."""
    conn = connect(url, timeout_s)
    try:
        entries: list[RedisEntry] = []
        for key in conn.scan_iter(count=1000):
            payload = conn.dump(key)
            if payload is None:  # expired between SCAN and DUMP
                continue
            ttl = conn.pttl(key)
            entries.append(
                RedisEntry(
                    key=base64.b64encode(key).decode(),
                    ttl_ms=max(int(ttl), 0) if ttl is not None and int(ttl) > 0 else 0,
                    dump=base64.b64encode(payload).decode(),
                )
            )
    finally:
        conn.close()
    entries.sort(key=lambda e: e.key)
    dest.parent.mkdir(parents=True, exist_ok=True)
    RedisArchive(keys=len(entries), sha256=entries_sha256(entries), entries=entries).save(dest)
    return dest


def restore(url: str, archive: Path, timeout_s: float = 5.0) -> int:
    """Every key of the archive back, after its checksum held (BackupManifestError, a
    ValueError, naming the file for a bad one)."""
    data = load_redis(archive)
    if entries_sha256(data.entries) != data.sha256:
        raise BackupManifestError(f"{archive}: checksum mismatch (archive corrupt)")
    conn = connect(url, timeout_s)
    try:
        pipe = conn.pipeline(transaction=False)
        for entry in data.entries:
            pipe.restore(
                base64.b64decode(entry.key), entry.ttl_ms, base64.b64decode(entry.dump),
                replace=True,
            )  # fmt: skip
        pipe.execute()
    finally:
        conn.close()
    return data.keys


def flush_all(url: str, timeout_s: float = 2.0) -> None:
    """The runbook's Redis rollback: the cache is disposable, MongoDB holds the truth."""
    conn = connect(url, timeout_s)
    try:
        conn.flushall()
    finally:
        conn.close()


def key_count(url: str, timeout_s: float = 2.0) -> int:
    conn = connect(url, timeout_s)
    try:
        return int(conn.dbsize())
    finally:
        conn.close()


def count_matching(url: str, pattern: str, timeout_s: float = 5.0) -> int:
    """Keys matching a glob (SCAN, never KEYS: a big cache must not stall for it)."""
    conn = connect(url, timeout_s)
    try:
        return sum(1 for _ in conn.scan_iter(match=pattern, count=1000))
    finally:
        conn.close()


class RdbError(StoreError, ValueError):
    """An RDB file a real redis-server would not load; the message names the file."""


@dataclass(frozen=True)
class RedisContents:
    """Every key of a server, as one comparable value: how many, and a SHA-256 over each
    key's type, value and whether it expires, keys sorted. Values, not DUMP payloads: a set
    or hash is serialised in its hash table's order, which differs between two servers
    loading the same file (measured: two loads of one RDB, two DUMP digests)."""

    keys: int
    sha256: str


def _b(value: object) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


def _value(conn: redis.Redis, key: bytes, kind: str) -> bytes:
    """A key's value in a form independent of the server's internal order."""
    if kind == "string":
        return _b(conn.get(key) or b"")
    if kind == "set":
        return b"\0".join(sorted(map(_b, conn.smembers(key))))
    if kind == "hash":
        pairs = sorted((_b(k), _b(v)) for k, v in conn.hgetall(key).items())
        return b"\0".join(k + b"=" + v for k, v in pairs)
    if kind == "list":
        return b"\0".join(map(_b, conn.lrange(key, 0, -1)))
    if kind == "zset":
        return repr(conn.zrange(key, 0, -1, withscores=True)).encode()
    return _b(conn.dump(key) or b"")  # streams, modules: their payload


def contents(conn: redis.Redis) -> RedisContents:
    digest = hashlib.sha256()
    keys = sorted(map(_b, conn.scan_iter(count=1000)))
    for key in keys:
        kind = _b(conn.type(key)).decode()
        expires = int(conn.pttl(key)) > 0
        for part in (key, kind.encode(), b"expires" if expires else b"", _value(conn, key, kind)):
            digest.update(len(part).to_bytes(8, "little") + part)
    return RedisContents(len(keys), digest.hexdigest())


def rdb_contents(rdb: Path, timeout_s: float = 10.0) -> RedisContents:
    """What a redis-server loads from `rdb` (see the module docstring)."""
    if not rdb.is_file():
        raise RdbError(f"{rdb}: no such RDB file")
    work = Path(tempfile.mkdtemp(prefix="rdb-"))  # 0700: the cache may hold users' data
    try:
        shutil.copyfile(rdb, work / "dump.rdb")
        sock = work / "redis.sock"
        server = proc.spawn(
            "redis-rdb-check",
            [find_tool("redis-server"), "--port", "0", "--unixsocket", str(sock),
             "--dir", str(work), "--dbfilename", "dump.rdb", "--save", "",
             "--appendonly", "no"],
            work / "redis.log",
        )  # fmt: skip
        try:
            conn = redis.Redis(unix_socket_path=str(sock), socket_timeout=timeout_s)
            try:
                server.wait_ready(lambda: bool(conn.ping()), timeout_s)
            except Exception:
                log = (work / "redis.log").read_text(errors="replace").strip().splitlines()
                why = next((line for line in reversed(log) if "#" in line), "no log line")
                raise RdbError(f"{rdb}: redis-server would not load it: {why}") from None
            try:
                return contents(conn)
            finally:
                conn.close()
        finally:
            server.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def rdb_location(url: str, timeout_s: float = 2.0) -> Path:
    """Where the server reads its RDB file at start: its `dir` / `dbfilename`."""
    conn = connect(url, timeout_s)
    try:
        folder = conn.config_get("dir")["dir"]
        name = conn.config_get("dbfilename")["dbfilename"]
        return Path(str(folder)) / str(name)
    finally:
        conn.close()


def url_contents(url: str, timeout_s: float = 5.0) -> RedisContents:
    conn = connect(url, timeout_s)
    try:
        return contents(conn)
    finally:
        conn.close()
