"""Seeding the reference data: the stack file's seed command (users, DID documents, the
test account, DIDs on the chain) run as an owned process, and the test account's DID read back.
Both backends and a compose project seed this way."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from rollback_drill.files.spec import LoadedStack
from rollback_drill.process import proc
from rollback_drill.process.errors import StackError
from rollback_drill.process.secrets import Secret
from rollback_drill.stores import mongo


@dataclass(frozen=True)
class SeedTarget:
    """Where the seed writes, as the host reaches it."""

    mongodb_uri: str
    rpc_url: str
    registry_address: str | None
    operator_address: str | None


def start_seed(
    loaded: LoadedStack, where: SeedTarget, password: Secret, log: Path, users: int | None = None
) -> subprocess.Popen[bytes]:
    """Run the stack file's seed command; the test account's password goes by environment,
    so the seed is started like every server (own group, dies with this thread, owner mark):
    a killed harness must not leave a process holding the password."""
    spec = loaded.spec
    seed = spec.seed
    argv = [sys.executable if a == "python" else a for a in seed.command] + [
        "--mongodb-uri", where.mongodb_uri,
        "--database", spec.stores.mongodb.database,
        "--users", str(users or seed.users),
        "--seed", str(seed.seed),
        "--rpc-url", where.rpc_url,
        "--registry", where.registry_address or "",
        "--operator", where.operator_address or "",
        "--chain-dids", str(min(seed.chain_dids, users or seed.users)),
    ]  # fmt: skip
    env = dict(os.environ)
    env[spec.test_account.password_env] = password.reveal()
    if seed.pythonpath:
        env["PYTHONPATH"] = str(loaded.resolve(seed.pythonpath))
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        seeding, _ = proc.popen_owned(argv, env, out)
    return seeding


def finish_seed(seeding: subprocess.Popen[bytes], log: Path, timeout_s: float = 600) -> None:
    try:
        code = seeding.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        seeding.kill()
        raise StackError(f"seed did not finish within {timeout_s:.0f} s") from None
    if code != 0:
        raise StackError(f"seed exited with code {code}:\n{log.read_text()[-2000:]}")


def lookup_test_did(loaded: LoadedStack, mongodb_uri: str) -> str | None:
    with mongo.client(mongodb_uri) as conn:
        users = conn[loaded.spec.stores.mongodb.database]["users"]
        doc = users.find_one({"email": loaded.spec.test_account.email})
    return str(doc["did"]) if doc is not None and "did" in doc else None
