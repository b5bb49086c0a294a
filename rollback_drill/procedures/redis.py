"""Database Rollback > Redis Rollback: clear the cache, restart Redis, check it answers - and
measure what the flush cost: the signed-in sessions that must sign in again, and whether
anything in MongoDB was lost (FLUSHALL must not reach the database of record).

SafePsy keeps every session in MongoDB and uses Redis as its fast path (a flush "logs
warnings but does not log users out", its sessions module says), so the drill holds it to
that: a session the flush logged out, one still refused, or a MongoDB document lost or
altered fails the verification. The commands run as the runbook has them, through
`docker exec` on the docker backend and against the stack's redis-server locally.
"""

from __future__ import annotations

from rollback_drill.failures.datascenarios import HELD_SESSIONS
from rollback_drill.steps.facts import Fact
from rollback_drill.steps.procedure import DrillContext, Procedure, Step, StepResult
from rollback_drill.steps.timeline import Artifact
from rollback_drill.stores import mongo
from rollback_drill.stores import redis as redis_store
from rollback_drill.stores.fingerprint import compare

BEFORE_FLUSH = Fact[mongo.Fingerprint]("MongoDB before the flush", "every collection, printed")


def mongo_now(ctx: DrillContext) -> mongo.Fingerprint:
    """Every collection of the application's database, every document."""
    target = ctx.stack.target()
    uri = target.mongodb_uri.reveal()
    with mongo.client(uri) as conn:
        names = sorted(
            n for n in conn[target.mongodb_database].list_collection_names()
            if not n.startswith("system.")
        )  # fmt: skip
    return mongo.fingerprint(uri, target.mongodb_database, names, timeout_s=5.0)


def clear_cache(ctx: DrillContext) -> StepResult:
    before = mongo_now(ctx)
    ctx.facts[BEFORE_FLUSH] = before
    url = ctx.stack.target().redis_url.reveal()
    keys = redis_store.key_count(url)
    sessions = redis_store.count_matching(url, "session:*")
    code, output = ctx.stack.exec("redis", ["redis-cli", "FLUSHALL"])
    if code != 0 or output.strip() != "OK":
        raise RuntimeError(f"redis-cli FLUSHALL answered {output.strip()!r} (exit {code})")
    return StepResult({"keys_flushed": keys, "session_keys_flushed": sessions})


def restart_redis(ctx: DrillContext) -> StepResult:
    before = ctx.stack.instance("redis")
    ctx.stack.restart("redis")
    return StepResult({"restarted": before != ctx.stack.instance("redis")})


def verify_redis(ctx: DrillContext) -> StepResult:
    """PONG, then the cost: every held session asked once, every MongoDB document of before
    the flush looked for."""
    code, output = ctx.stack.exec("redis", ["redis-cli", "ping"])
    if code != 0 or output.strip() != "PONG":
        raise RuntimeError(f"redis-cli ping answered {output.strip()!r} (exit {code})")
    fate = ctx.facts[HELD_SESSIONS].ask()
    before = ctx.facts[BEFORE_FLUSH]
    after = mongo_now(ctx)
    names = sorted(before.collections)  # documents users added since are counted, not failed
    diffs = compare(before, after, names, append=set(names))
    cost = {
        "sessions": fate.to_json(),
        "mongodb": [d.row() for d in diffs],
        "mongodb_intact": all(d.equal for d in diffs),
    }
    ctx.evidence["redis_flush_cost"] = cost
    problems = [p for d in diffs for p in d.problems]
    if fate.must_sign_in_again:
        problems.append(
            f"the flush signed {fate.must_sign_in_again} of {fate.held} sessions out: Redis "
            "held what MongoDB did not"
        )
    if fate.broken:
        problems.append(f"{fate.broken} of {fate.held} sessions still refused: {fate.statuses}")
    if problems:
        raise RuntimeError("; ".join(problems))
    return StepResult(
        {"ping": "PONG", **fate.to_json(), "mongodb_intact": True},
        (Artifact("what the flush cost", "json", data=cost),),
    )


PROCEDURE = Procedure(
    name="database: redis",
    runbook_section="Rollback Procedures > Database Rollback > Redis Rollback",
    rollback_type="emergency",
    reverts_release=False,  # restores data under the release that runs
    steps=(
        Step(
            "Clear Redis cache",
            "docker exec safepsy-redis redis-cli FLUSHALL",
            clear_cache,
            provides=(BEFORE_FLUSH,),
        ),
        Step("Restart Redis", "docker-compose restart redis", restart_redis),
        Step(
            "Verify Redis connectivity",
            "docker exec safepsy-redis redis-cli ping",
            verify_redis,
            needs=(HELD_SESSIONS, BEFORE_FLUSH),
        ),
    ),
)
