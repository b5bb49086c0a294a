"""Redis accepts writes - not only PING. A Redis that answers PONG can still refuse every write:
out of memory under `noeviction`, a failed background save with stop-writes-on-bgsave-error
(MISCONF), a failing append-only file, too few replicas for min-replicas-to-write
(NOREPLICAS), or a read-only replica. The backend then cannot cache a session, and PING says
nothing about it.

With writes allowed, the check writes a key of its own (`rollback-drill:verify:<random>`,
a 30 s TTL so that nothing stays even if the run dies), reads it back and deletes it; the
write is listed with the run's writes. A read_only target is judged from what Redis reports
(INFO memory, persistence, replication; CONFIG GET where allowed). Both read INFO, so the
evidence shows memory against maxmemory and its policy either way.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from rollback_drill.checks import resp
from rollback_drill.checks.result import Check, CheckResult
from rollback_drill.process.errors import RedisReplyError
from rollback_drill.stack.target import Target

NAME = "stores.redis_writes"
KEY_PREFIX = "rollback-drill:verify:"
TTL_MS = 30_000
_FIELDS = (
    "role", "used_memory", "maxmemory", "maxmemory_policy", "rdb_last_bgsave_status",
    "aof_enabled", "aof_last_write_status", "connected_slaves", "min_slaves_good_slaves",
)  # fmt: skip


def _config(conn: resp.Connection, name: str) -> str | None:
    """A CONFIG GET value; None where CONFIG is refused (managed Redis often renames it)."""
    try:
        reply = conn.command("CONFIG", "GET", name)
    except RedisReplyError:
        return None
    return str(reply[1]) if isinstance(reply, list) and len(reply) == 2 else None


def refusals(facts: dict[str, str], conn: resp.Connection, near: float) -> list[str]:
    """Why this Redis refuses (or is about to refuse) writes, from INFO (and CONFIG)."""
    found = []
    if facts.get("role") == "slave" and _config(conn, "replica-read-only") != "no":
        found.append("a read-only replica (writes answered READONLY)")
    failed_save = facts.get("rdb_last_bgsave_status") == "err"
    if failed_save and _config(conn, "stop-writes-on-bgsave-error") != "no":
        found.append("the last background save failed: writes refused (MISCONF)")
    if facts.get("aof_enabled") == "1" and facts.get("aof_last_write_status") == "err":
        found.append("writing the append-only file failed: writes refused")
    good = facts.get("min_slaves_good_slaves")
    if good is not None:
        wanted = _config(conn, "min-replicas-to-write")
        if (wanted is None and good == "0") or (wanted is not None and int(good) < int(wanted)):
            found.append(
                f"{good} good replica(s), min-replicas-to-write {wanted or '>= 1'}: "
                "writes refused (NOREPLICAS)"
            )
    used, limit = int(facts.get("used_memory", 0)), int(facts.get("maxmemory", 0))
    if limit and facts.get("maxmemory_policy") == "noeviction" and used >= near * limit:
        found.append(
            f"used_memory {used} B of maxmemory {limit} B ({used / limit:.0%}, refusal at "
            f"100 %, limit {near:.0%}) under noeviction: writes refused with OOM"
        )
    return found


def _write(conn: resp.Connection) -> tuple[str, str | None, float]:
    """(key, why the write failed or None, seconds) of one SET/GET/DEL of verify's own key."""
    key = KEY_PREFIX + secrets.token_hex(8)
    value = secrets.token_hex(8)
    started = time.monotonic()
    try:
        conn.command("SET", key, value, "PX", str(TTL_MS))
    except RedisReplyError as exc:
        return key, f"SET {key} refused: {exc}", time.monotonic() - started
    try:
        read = conn.command("GET", key)
    finally:
        deleted = conn.command("DEL", key)
    seconds = time.monotonic() - started
    if read != value:
        return key, f"SET {key} answered OK but GET read {read!r} back", seconds
    if deleted != 1:
        return key, f"DEL {key} removed {deleted} key(s), expected 1", seconds
    return key, None, seconds


def _redis_writes(target: Target) -> CheckResult:
    ca = str(target.ca_file) if target.ca_file else None
    near = target.thresholds.memory_warning
    with resp.connect(target.redis_url.reveal(), target.thresholds.request_timeout_s, ca) as conn:
        facts = resp.info(conn, "memory", "persistence", "replication")
        reported = {k: facts[k] for k in _FIELDS if k in facts}
        evidence: dict[str, Any] = {"info": reported, "read_only": target.read_only}
        if target.read_only:
            problems = refusals(facts, conn, near)
            evidence["refusals"] = problems
            summary = "; ".join(problems) or (
                "read_only: judged from INFO, nothing says writes are refused (memory "
                f"{_memory(reported)}, last save {reported.get('rdb_last_bgsave_status')}, "
                f"role {reported.get('role')})"
            )
            return CheckResult(NAME, not problems, summary, evidence)
        key, problem, seconds = _write(conn)
    evidence.update(
        key=key,
        ttl_ms=TTL_MS,
        seconds=round(seconds, 4),
        writes=[{"store": "redis", "key": key, "note": f"TTL {TTL_MS // 1000} s, deleted after"}],
    )
    if problem is not None:
        return CheckResult(NAME, False, problem, evidence)
    return CheckResult(
        NAME,
        True,
        f"SET, GET and DEL of its own key in {seconds * 1000:.1f} ms (memory {_memory(reported)})",
        evidence,
    )


def _memory(facts: dict[str, str]) -> str:
    used, limit = int(facts.get("used_memory", 0)), int(facts.get("maxmemory", 0))
    if not limit:
        return f"{used} B, no maxmemory"
    return f"{used} B of {limit} B ({used / limit:.0%}), {facts.get('maxmemory_policy')}"


CHECKS = [
    Check(
        NAME,
        "stores",
        _redis_writes,
        doc="Redis accepts a write of verify's own key (read_only: INFO says it would)",
    )
]
