"""The data drills' instruments on a real stack: the writer's acknowledged writes and the
recovery point a restore leaves, the change-stream integrity watch, held sessions."""

from __future__ import annotations

import time
from pathlib import Path

import bson
from bson.raw_bson import RawBSONDocument

from rollback_drill.failures.userwrites import CANARY, AckWriter, SessionHolder, recovery_point
from rollback_drill.monitoring import datawatch
from rollback_drill.process.wait import Wait
from rollback_drill.stack.local import LocalStack
from rollback_drill.steps.timeline import Timeline
from rollback_drill.stores import mongo
from tests.helpers import user_deleted


def test_a_restore_keeps_what_was_acknowledged_before_its_backup_and_loses_the_rest(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    target = local_stack.target()
    with AckWriter(target, interval_s=0.1, did_every=3) as writer:
        writer.wait_for(2)
        backup = local_stack.backup_stores(tmp_path / "backup")
        manifest = mongo.verify_archive(backup / "mongodb")
        writer.wait_for(2, since=time.time())
    fault = time.time()
    acks = writer.snapshot()
    assert {a.kind for a in acks} == {"login", "did registration", "canary"}
    untouched = recovery_point(acks, target, manifest.started, manifest.finished, fault)
    assert untouched.ok and not untouched.lost and untouched.data_lost_s == 0

    report = mongo.restore(local_stack.mongodb_uri, "safepsy", backup / "mongodb")
    assert report.equal
    point = recovery_point(acks, target, manifest.started, manifest.finished, fault)
    assert point.ok, point.explain()
    assert point.lost and all(a.at >= manifest.started for a in point.lost)
    assert manifest.finished is not None and point.kept_last is not None
    assert point.kept_last.at < manifest.finished
    assert point.data_lost_s > 0 and point.to_json()["writes_lost"] == len(point.lost)

    with mongo.client(local_stack.mongodb_uri) as conn:  # a write before the backup, gone
        first = min((a for a in acks if a.kind == "canary"), key=lambda a: a.at)
        conn["safepsy"][CANARY].delete_one({"_id": first.key})
    broken = recovery_point(acks, target, manifest.started, manifest.finished, fault)
    assert not broken.ok and "BEFORE the backup began" in broken.explain()


def test_the_integrity_watch_fires_on_writes_where_no_user_writes_and_resolves(
    local_stack: LocalStack,
) -> None:
    heard: list[tuple[bool, str]] = []
    timeline = Timeline()

    def report(name: str, category: str, ok: bool, summary: str, at: float) -> None:
        assert (name, category) == (datawatch.NAME, "integrity")
        heard.append((ok, summary))

    with datawatch.DataWatch(local_stack.target, ["users"], report, timeline) as watch:
        time.sleep(0.5)
        with mongo.client(local_stack.mongodb_uri) as conn:  # a user's write elsewhere: quiet
            conn["safepsy"]["sessions"].insert_one(
                RawBSONDocument(bson.encode({"_id": "watch-probe"}))
            )
            conn["safepsy"]["sessions"].delete_one({"_id": "watch-probe"})
        time.sleep(1.0)
        assert not heard, heard
        with user_deleted(local_stack.mongodb_uri):
            Wait("the watch firing", 10, 0.05).until(lambda: any(not ok for ok, _ in heard))
        assert "users delete x1" in heard[-1][1]
        Wait("the watch resolving", 10, 0.1).until(lambda: heard[-1][0])
    assert watch.seen[("users", "insert")] == 1


def test_held_sessions_say_who_is_still_signed_in(local_stack: LocalStack) -> None:
    held = SessionHolder(local_stack.target())
    held.sign_in(3)
    assert held.ask().to_json()["still_signed_in"] == 3
    with mongo.client(local_stack.mongodb_uri) as conn:
        conn["safepsy"]["sessions"].delete_many({"createdAt": {"$gt": time_ago(60)}})
    from rollback_drill.stores import redis as redis_store

    redis_store.flush_all(local_stack.redis_url)
    fate = held.ask()
    assert (fate.held, fate.must_sign_in_again, fate.kept) == (3, 3, 0)
    assert len(held) == 0, "a session told to sign in again is dropped, as a browser does"


def time_ago(seconds: float) -> object:
    from datetime import UTC, datetime, timedelta

    return datetime.now(UTC) - timedelta(seconds=seconds)
