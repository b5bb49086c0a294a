"""The runbook's database connectivity checks (`mongosh ping`, `redis-cli ping`): each
answers within the timeout or fails - never hangs. (The chain's is in `checks.chain`.)"""

from __future__ import annotations

import time

from rollback_drill.checks import reach, resp
from rollback_drill.checks.result import Check, CheckResult
from rollback_drill.process import lazy
from rollback_drill.process.errors import RedisReplyError
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


def redis_ping(url: str, timeout_s: float) -> float:
    """`redis-cli ping` over a socket (`resp`: AUTH first when the URL has credentials; the
    redis client costs ~60 ms of CPU to import, a verify run's whole budget is under a
    second). Round-trip seconds of PING; RedisReplyError for an error reply."""
    with resp.connect(url, timeout_s) as conn:
        start = time.monotonic()
        try:
            reply = conn.command("PING")
        except RedisReplyError as exc:
            raise RedisReplyError(f"PING -> {exc}") from None
        if reply != "PONG":
            raise RedisReplyError(f"PING -> {reply!r}")
        return time.monotonic() - start


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
