"""The stores agree with each other: each DID document anchored on chain is the one the
database records for it (`did_documents`, the records marked `anchored`).

Each store can look fine alone while they disagree: a contract redeploy whose state migration
missed a subject (the DID no longer resolves) or altered one (another document on chain than
in the database) leaves the registry's code, version and owner right and the database intact.
So the database's anchored records are read, each DID's registry key computed (keccak256 of
the DID, in plain Python: checks/keccak.py) and the registry asked over raw JSON-RPC - batched,
and without web3 (1.8 s to import) - what it resolves each to.

All of them when there are few (up to `ALL_UP_TO`, or the sample size); otherwise a random
sample, sized so that a disagreement in a share `DISAGREEING_SHARE` of the anchored DIDs or
more is caught with the target's confidence: with n DIDs drawn at random, it goes unseen with
probability at most (1 - share)^n. The test DID, when the target names one, is always among
them. The sample size, the seed that drew it and the bound are in the evidence. What is on
chain and in no database record is not looked for (enumerating a registry takes its whole
event history).
"""

from __future__ import annotations

import json
import random
import secrets
from collections.abc import Mapping
from typing import Any

from rollback_drill.chain.artifacts import selector
from rollback_drill.chain.jsonrpc import request_body
from rollback_drill.checks.chain import decode_string
from rollback_drill.checks.http import request
from rollback_drill.checks.keccak import keccak256
from rollback_drill.checks.result import Check, CheckResult
from rollback_drill.checks.sampling import samples_needed
from rollback_drill.process import lazy
from rollback_drill.process.errors import CheckSkipped
from rollback_drill.stack.target import Target

NAME = "stores.did_documents"
ALL_UP_TO = 64
DISAGREEING_SHARE = 0.05
BATCH = 50  # eth_calls per JSON-RPC batch: public endpoints cap batches (often at 50-100)
NOT_REGISTERED = "0x8cc00d16"  # NotRegistered(bytes32), keccak-pinned in test_verify_units.py


def _plain(value: Any) -> Any:
    """A BSON value (raw documents included) as plain JSON-like data."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _records(target: Target) -> tuple[list[str], int, dict[str, Any], dict[str, Any]]:
    """(the DIDs to compare, how many are anchored, their database documents, the sample's
    facts): the sampling is done here, on the anchored DIDs' ids."""
    with lazy.imports():
        from rollback_drill.stores.mongoconn import client

    timeout = target.thresholds.request_timeout_s
    with client(target.mongodb_uri.reveal(), timeout) as conn:
        records = conn[target.mongodb_database]["did_documents"]
        dids = [str(d["_id"]) for d in records.find({"anchored": True}, {"_id": 1})]
        needed = samples_needed(DISAGREEING_SHARE, target.sampling_confidence)
        facts: dict[str, Any] = {"anchored_in_database": len(dids)}
        if len(dids) <= max(ALL_UP_TO, needed):
            chosen = sorted(dids)
            facts["sample"] = f"all {len(dids)}"
        else:
            seed = secrets.randbits(32)
            chosen = random.Random(seed).sample(sorted(dids), needed)
            facts.update(
                sample=needed,
                seed=seed,
                bound=f"a disagreement in >= {DISAGREEING_SHARE:.0%} of the {len(dids)} anchored "
                f"DIDs is caught with >= {target.sampling_confidence:.0%} (unseen with "
                f"probability <= {(1 - DISAGREEING_SHARE) ** needed:.3f})",
            )
        if target.test_did and target.test_did not in chosen:
            chosen.append(target.test_did)
        found = {
            str(d["_id"]): _plain(d["document"])
            for d in records.find({"_id": {"$in": chosen}}, {"document": 1, "anchored": 1})
            if d.get("anchored") is True
        }
    return chosen, len(dids), found, facts


def _on_chain(target: Target, dids: list[str]) -> dict[str, str | None]:
    """Each DID's document as the registry resolves it (None: NotRegistered); RuntimeError
    when the registry cannot be asked (an RPC error other than NotRegistered)."""
    assert target.rpc_url and target.registry_address
    calls = [
        request_body("eth_call", [{"to": target.registry_address,
                                   "data": "0x" + (selector("resolve(bytes32)")
                                                   + keccak256(did.encode())).hex()},
                                  "latest"], i)
        for i, did in enumerate(dids)
    ]  # fmt: skip
    found: dict[str, str | None] = {}
    for start in range(0, len(calls), BATCH):
        for answer in _answers(target, calls[start : start + BATCH]):
            did = dids[int(answer.get("id", -1))]
            error = answer.get("error")
            if error is None:
                raw = bytes.fromhex(str(answer.get("result", "")).removeprefix("0x"))
                found[did] = decode_string(raw) if raw else ""
            elif str(error.get("data", "")).startswith(NOT_REGISTERED):
                found[did] = None
            else:
                raise RuntimeError(f"resolve({did}) on the registry: {error.get('message')}")
    missing = [d for d in dids if d not in found]
    if missing:
        raise RuntimeError(f"the RPC batch answered no result for {len(missing)} DID(s)")
    return found


def _answers(target: Target, calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The answers to a batch of calls. An endpoint that refuses the batch as a whole (one
    error object instead of a list, or 413: public endpoints cap batches, some at 10) gets
    it again in halves, down to single calls, rather than the check failing on how the
    endpoint is run; a single call it still refuses is a RuntimeError naming its answer."""
    assert target.rpc_url
    resp = request(target, "POST", target.rpc_url, json=calls if len(calls) > 1 else calls[0])
    if resp.status == 200 and isinstance(resp.body, list):
        return [a for a in resp.body if isinstance(a, dict)]
    if resp.status == 200 and isinstance(resp.body, dict) and len(calls) == 1:
        return [resp.body]
    refused_as_a_batch = resp.status == 413 or (resp.status == 200 and isinstance(resp.body, dict))
    if refused_as_a_batch and len(calls) > 1:
        half = len(calls) // 2
        return _answers(target, calls[:half]) + _answers(target, calls[half:])
    raise RuntimeError(f"RPC batch of eth_call -> {resp.status} {resp.text[:200]}")


def _compare(did: str, recorded: Any, chain: str | None) -> str | None:
    if recorded is None:
        return f"{did}: no anchored record in the database"
    if chain is None:
        return f"{did}: recorded as anchored, not registered on chain"
    try:
        parsed = json.loads(chain)
    except ValueError:
        return f"{did}: the chain holds a malformed document"
    if parsed != recorded:
        keys = sorted(k for k in {*parsed, *recorded} if parsed.get(k) != recorded.get(k))
        return f"{did}: the chain's document differs from the database's ({', '.join(keys)})"
    return None


def _did_documents(target: Target) -> CheckResult:
    if not target.rpc_url or not target.registry_address:
        raise CheckSkipped("the target names no rpc_url and registry_address")
    dids, anchored, recorded, facts = _records(target)
    if not dids:
        raise CheckSkipped(
            "the database records no anchored DID document and the target names no test_did: "
            "nothing to compare"
        )
    chain = _on_chain(target, dids)
    problems = [p for did in dids if (p := _compare(did, recorded.get(did), chain[did]))]
    evidence = {**facts, "compared": len(dids), "disagreeing": len(problems)}
    evidence["first_disagreements"] = problems[:10]
    if problems:
        head = f"{len(problems)} of {len(dids)} DID(s) disagree between chain and database: "
        return CheckResult(NAME, False, head + "; ".join(problems[:3]), evidence)
    how = facts.get("bound") or "all of them"
    return CheckResult(
        NAME,
        True,
        f"{len(dids)} of {anchored} anchored DID document(s) identical on chain and in the "
        f"database ({how})",
        evidence,
    )


CHECKS = [
    Check(
        NAME,
        "stores",
        _did_documents,
        doc="each anchored DID's document on chain equals the database's record (all, or a "
        "sample sized for a stated detection bound)",
        reads_whole_collections=True,  # lists the anchored DIDs
    )
]
