"""Write the target file (and its integrity baseline) for a stack this harness started, so
the verify suite can be tried against it exactly as against a live environment."""

from __future__ import annotations

from pathlib import Path

import yaml

from rollback_drill.stores import mongo
from rollback_drill.target import Target

BASELINE_COLLECTIONS = ["users", "did_documents"]


def write_target_file(target: Target, directory: Path, password_file: Path) -> Path:
    """target.yaml + baseline.json in `directory`; the password stays in its 0600 file."""
    directory.mkdir(parents=True, exist_ok=True)
    baseline = mongo.fingerprint(
        target.mongodb_uri.reveal(), target.mongodb_database, BASELINE_COLLECTIONS
    )
    baseline.save(directory / "baseline.json")
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
        "integrity": {"baseline": "baseline.json", "collections": BASELINE_COLLECTIONS},
        "read_only": True,
    }
    path = directory / "target.yaml"
    path.write_text(
        "# written by rollback-drill for a stack it started; URIs carry no credentials\n"
        + yaml.safe_dump(doc, sort_keys=False)
    )
    return path
