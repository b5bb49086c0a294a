"""Redis: probes that fail fast, a logical backup (DUMP/RESTORE, portable across backends),
and the runbook's FLUSHALL.

redis-py 8's default retry policy takes ~4 s to report a refused connection, so every client
here is built with retries off: "is it down" must be answered within the caller's timeout.
"""

from __future__ import annotations

import base64
import time
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from rollback_drill.files.storebackup import (
    REDIS_FORMAT,
    RedisArchive,
    RedisEntry,
    entries_sha256,
    load_redis,
)

FORMAT = REDIS_FORMAT


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
    archive = RedisArchive(keys=len(entries), sha256=entries_sha256(entries), entries=entries)
    archive.save(dest)
    return dest


def restore(url: str, archive: Path, timeout_s: float = 5.0) -> int:
    """Every key of the archive back, after its checksum held (BackupManifestError, a
    ValueError, naming the file for a bad one)."""
    data = load_redis(archive)
    if entries_sha256(data.entries) != data.sha256:
        raise ValueError(f"{archive}: checksum mismatch (archive corrupt)")
    conn = connect(url, timeout_s)
    try:
        pipe = conn.pipeline(transaction=False)
        for entry in data.entries:
            pipe.restore(
                base64.b64decode(entry.key),
                entry.ttl_ms,
                base64.b64decode(entry.dump),
                replace=True,
            )
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
