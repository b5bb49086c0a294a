"""Write the target file (and its integrity baseline) for a stack this harness started, so
the verify suite can be tried against it exactly as against a live environment: with what
the stack must be running (releases, contract version, registry and owner) and the log and
stats access it grants."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from rollback_drill.files.spec import LoadedStack
from rollback_drill.files.userfiles import SpecError
from rollback_drill.stack.access import DockerLogs, DockerStats, FileLogs, LocalStats
from rollback_drill.stack.target import Target
from rollback_drill.stores import mongo
from rollback_drill.stores.mongoconn import client

INTEGRITY_FIELD = "stores.mongodb.integrity_collections"


def refuse_missing_collections(loaded: LoadedStack, uri: str, database: str) -> None:
    """SpecError when the stack file's integrity collections name one the running stack's
    database does not hold: its baseline would be of nothing and protect nothing (as
    `fingerprint` refuses). Only a running, seeded stack can say, so `up` asks after seeding
    and `doctor` asks the stack `up` runs."""
    wanted = loaded.spec.stores.mongodb.integrity_collections
    with client(uri) as conn:
        held = sorted(conn[database].list_collection_names())
    missing = [name for name in wanted if name not in held]
    if missing:
        raise SpecError(
            f"{loaded.path}: {INTEGRITY_FIELD}: no collection {', '.join(missing)} in "
            f"database {database!r} after seeding; it holds: {', '.join(held) or 'none'}"
        )


def access_of(target: Target) -> dict[str, Any]:
    """The access a target grants, as the target file spells it (what cannot be spelled -
    a stack reached through the Stack protocol - is left out and shows as not verified)."""
    access: dict[str, Any] = {}
    if isinstance(target.logs, FileLogs):
        access["logs"] = {"files": {s: [str(p) for p in ps] for s, ps in target.logs.files.items()}}
    elif isinstance(target.logs, DockerLogs):
        access["logs"] = {"docker": dict(target.logs.containers)}
    if isinstance(target.stats, LocalStats):
        access["stats"] = {"local": True}
    elif isinstance(target.stats, DockerStats):
        access["stats"] = {"docker": dict(target.stats.containers)}
    return access


def write_target_file(target: Target, directory: Path, password_file: Path) -> Path:
    """target.yaml + baseline.json in `directory`; the password stays in its 0600 file. The
    baseline covers the stack file's `stores.mongodb.integrity_collections` (the target's),
    and those users keep writing to (logins add sessions, the verify run's own included) are
    `written_by_users`."""
    directory.mkdir(parents=True, exist_ok=True)
    collections = list(target.integrity_collections)
    appended = target.append_collections()
    baseline = mongo.fingerprint(target.mongodb_uri.reveal(), target.mongodb_database, collections)
    baseline.save(directory / "baseline.json")
    expected: dict[str, Any] = {}
    if target.expected_releases:
        expected["releases"] = dict(target.expected_releases)
    if target.expected_contract_version:
        expected["contract_version"] = target.expected_contract_version
    if target.expected_owner:
        expected["registry_owner"] = target.expected_owner
    doc = {
        "name": target.name,
        "services": {
            "backend": target.backend_url,
            "ai-chatbot": target.chatbot_url,
            "frontend": target.frontend_url,
            "frontend_tls": target.frontend_tls_url,
        },
        "mongodb_uri": target.mongodb_uri.reveal(),
        "mongodb_database": target.mongodb_database,
        "redis_url": target.redis_url.reveal(),
        "rpc_url": target.rpc_url,
        "registry_address": target.registry_address,
        "chain_id": target.chain_id,
        "contract_artifact": str(target.contract_artifact),
        "test_account": {"email": target.test_email, "password_file": str(password_file)},
        "test_did": target.test_did,
        "tls": {"ca_file": str(target.ca_file), "server_name": target.server_name},
        "integrity": {
            "baseline": "baseline.json",
            "collections": collections,
            "written_by_users": [c for c in collections if c in appended],
        },
        "expected": expected,
        "access": access_of(target),
        "read_only": False,
    }
    path = directory / "target.yaml"
    path.write_text(
        "# written by rollback-drill for a stack it started; URIs carry no credentials\n"
        + yaml.safe_dump(doc, sort_keys=False)
    )
    return path
