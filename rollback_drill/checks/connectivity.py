"""The runbook's database connectivity checks (`mongosh ping`, `redis-cli ping`): each
answers within the timeout or fails - never hangs. (The chain's is in `checks.chain`.)"""

from __future__ import annotations

import socket
import time
from urllib.parse import unquote, urlsplit

from rollback_drill.checks import reach
from rollback_drill.checks.result import Check, CheckResult
from rollback_drill.process import lazy
from rollback_drill.stack.target import Target


def _refused(name: str, uri: str, target: Target) -> CheckResult | None:
    address = reach.host_port(uri)
    why = reach.probe(*address, target.thresholds.request_timeout_s) if address else None
    if why is None:
        return None
    assert address is not None
    return CheckResult(name, False, f"{address[0]}:{address[1]}: {why}", {"failure": why})


def _mongodb(target: Target) -> CheckResult:
    with lazy.imports():
        from pymongo.errors import PyMongoError

        from rollback_drill.stores import mongo

    uri = target.mongodb_uri.reveal()
    refused = _refused("connectivity.mongodb", uri, target)
    if refused is not None:
        return refused
    try:
        seconds = mongo.ping(uri, timeout_s=target.thresholds.request_timeout_s)
    except PyMongoError as exc:
        first = str(exc).split(", Timeout:")[0].split(" (configured timeouts")[0]
        return CheckResult(
            "connectivity.mongodb",
            False,
            f"no ping answer within {target.thresholds.request_timeout_s:g} s: {first}",
            {"error": type(exc).__name__},
        )
    return CheckResult(
        "connectivity.mongodb",
        True,
        f"ping answered in {seconds * 1000:.1f} ms",
        {"seconds": seconds},
    )


class RedisReplyError(RuntimeError):
    pass


def _resp(*words: str) -> bytes:
    parts = [f"*{len(words)}\r\n".encode()]
    for word in words:
        data = word.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def redis_ping(url: str, timeout_s: float) -> float:
    """`redis-cli ping` over a socket (AUTH first when the URL has credentials): the redis
    client costs ~60 ms of CPU to import, a verify run's whole budget is under a second.
    Round-trip seconds of PING; RedisReplyError for an error reply."""
    parts = urlsplit(url)
    commands = [["PING"]]
    if parts.password:
        user = [unquote(parts.username)] if parts.username else []
        commands.insert(0, ["AUTH", *user, unquote(parts.password)])
    with socket.create_connection(
        (parts.hostname or "localhost", parts.port or 6379), timeout_s
    ) as sock:
        reader = sock.makefile("rb")
        seconds = 0.0
        for command in commands:
            start = time.monotonic()
            sock.sendall(_resp(*command))
            reply = reader.readline().rstrip(b"\r\n")
            seconds = time.monotonic() - start
            if not reply.startswith(b"+"):
                raise RedisReplyError(f"{command[0]} -> {reply.decode(errors='replace')[:200]}")
        return seconds


def _redis(target: Target) -> CheckResult:
    url = target.redis_url.reveal()
    refused = _refused("connectivity.redis", url, target)
    if refused is not None:
        return refused
    if url.startswith("rediss://"):  # TLS: the real client
        with lazy.imports():
            from rollback_drill.stores import redis as redis_store
        seconds = redis_store.ping(url, timeout_s=target.thresholds.request_timeout_s)
    else:
        seconds = redis_ping(url, target.thresholds.request_timeout_s)
    return CheckResult(
        "connectivity.redis", True, f"PONG in {seconds * 1000:.1f} ms", {"seconds": seconds}
    )


CHECKS = [
    Check(
        "connectivity.mongodb",
        "connectivity",
        _mongodb,
        doc="mongosh --eval db.adminCommand('ping')",
        runbook="docker exec safepsy-mongodb mongosh --eval \"db.adminCommand('ping')\"",
    ),
    Check(
        "connectivity.redis",
        "connectivity",
        _redis,
        doc="redis-cli ping",
        runbook="docker exec safepsy-redis redis-cli ping",
    ),
]
