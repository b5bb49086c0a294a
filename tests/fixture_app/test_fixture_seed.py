"""The seed command and the DIDRegistry contract, against real SecantusDB and anvil."""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import bson
import pytest
from safepsy_app.did import subject_of
from safepsy_app.did_registry import selector
from safepsy_app.seed_data import TEST_USER_ID, did_for
from safepsy_fixture_support import ARTIFACT, TEST_PASSWORD, Infra, run_seed


def digest(infra: Infra, database: str) -> dict[str, str]:
    """sha256 of each owned collection's BSON documents in _id order."""
    with infra.mongo() as client:
        db = client[database]
        return {
            name: hashlib.sha256(
                b"".join(bson.encode(doc) for doc in db[name].find().sort("_id", 1))
            ).hexdigest()
            for name in ("users", "sessions", "did_documents", "meta")
        }


def summary_of(result: Any) -> dict[str, Any]:
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1
    parsed: dict[str, Any] = json.loads(lines[0])
    return parsed


def test_seed_writes_expected_collections(infra: Infra) -> None:
    summary = summary_of(run_seed(infra, "--database", "seed_a", "--users", "30"))
    assert summary["users"] == 31
    assert summary["sessions"] == 15
    assert summary["did_documents"] == 31
    assert summary["seconds"] < 10
    with infra.mongo() as client:
        db = client["seed_a"]
        assert db["users"].count_documents({}) == 31
        assert db["meta"].find_one({"_id": "schema"}) == {"_id": "schema", "version": 1}
        indexes = db["users"].index_information()
        assert any(
            spec["key"] == [("email", 1)] and spec.get("unique") for spec in indexes.values()
        )
        test_user = db["users"].find_one({"email": "test@safepsy.com"})
        assert test_user is not None
        assert test_user["_id"] == TEST_USER_ID
        assert test_user["passwordHash"].startswith("pbkdf2_sha256$10000$")
        assert TEST_PASSWORD not in json.dumps(test_user, default=str)
        user = db["users"].find_one({"_id": "u000001"})
        assert user is not None and user["passwordHash"].startswith("pbkdf2_sha256$1000$")
        record = db["did_documents"].find_one({"userId": "u000001"})
        assert record is not None and record["_id"] == user["did"]
        assert record["document"]["controller"] == user["did"]
        assert db["sessions"].count_documents({"userId": {"$regex": "^u0"}}) == 15


def test_seed_is_deterministic_and_idempotent(infra: Infra) -> None:
    args = ("--users", "25", "--seed", "7")
    with ThreadPoolExecutor(3) as pool:  # independent databases: seed them concurrently
        runs = [
            pool.submit(run_seed, infra, "--database", "seed_b", *args),
            pool.submit(run_seed, infra, "--database", "seed_c", *args),
            pool.submit(run_seed, infra, "--database", "seed_d", "--users", "25", "--seed", "8"),
        ]
        for run in runs:
            summary_of(run.result())
    first = digest(infra, "seed_b")
    assert digest(infra, "seed_c") == first, "same arguments give byte-identical documents"
    assert digest(infra, "seed_d") != first, "another seed gives other documents"
    summary_of(run_seed(infra, "--database", "seed_b", *args))
    assert digest(infra, "seed_b") == first, "re-seeding over existing data is idempotent"


def test_seed_without_test_password_exits_2(infra: Infra) -> None:
    result = run_seed(infra, "--database", "seed_nopw", password=None)
    assert result.returncode == 2
    assert "SAFEPSY_TEST_PASSWORD" in result.stderr
    with infra.mongo() as client:
        assert "users" not in client["seed_nopw"].list_collection_names()


@pytest.mark.parametrize(
    "args",
    [["--rpc-url", "http://127.0.0.1:1"], ["--users", "0"], ["--registry", "0x12"]],
)
def test_seed_rejects_bad_arguments(infra: Infra, args: list[str]) -> None:
    result = run_seed(infra, "--database", "seed_e", *args)
    assert result.returncode == 2
    assert "error" in result.stderr


def test_seed_with_chain_registers_the_test_did(infra: Infra) -> None:
    summary = summary_of(
        run_seed(
            infra,
            "--database", "seed_f",
            "--users", "5",
            "--seed", "99",
            "--rpc-url", infra.rpc_url,
            "--registry", infra.registry,
            "--operator", infra.operator,
        )
    )  # fmt: skip
    receipt = infra.rpc("eth_getTransactionReceipt", [summary["test_did_tx"]])
    assert receipt["status"] == "0x1"
    did = did_for(99, TEST_USER_ID)
    assert receipt["logs"][0]["topics"][1] == "0x" + subject_of(did).hex()


def test_contract_rules(infra: Infra) -> None:
    """Owner-only writes, pause, custom errors: exercised through web3 as drills do."""
    from web3 import Web3
    from web3.exceptions import ContractCustomError

    artifact = json.loads(ARTIFACT.read_text())
    assert artifact["compiler"]["evmVersion"] == "shanghai"
    w3 = Web3(Web3.HTTPProvider(infra.rpc_url))
    registry = w3.eth.contract(
        address=Web3.to_checksum_address(infra.registry), abi=artifact["abi"]
    )
    assert registry.functions.owner().call().lower() == infra.operator.lower()
    assert registry.functions.version().call() == "1.4.0"
    stranger = w3.eth.accounts[1]
    subject = subject_of("did:safepsy:contract-test")
    with pytest.raises(ContractCustomError) as not_owner:
        registry.functions.register(subject, "{}").transact({"from": stranger})
    assert selector("NotOwner()").hex() in str(not_owner.value)
    with pytest.raises(ContractCustomError) as not_registered:
        registry.functions.resolve(subject).call()
    assert selector("NotRegistered(bytes32)").hex() in str(not_registered.value)
    with pytest.raises(ContractCustomError) as empty:
        registry.functions.register(subject, "").transact({"from": infra.operator})
    assert selector("EmptyDocument()").hex() in str(empty.value)

    tx = registry.functions.pause().transact({"from": infra.operator})
    assert registry.events.Paused().process_receipt(w3.eth.get_transaction_receipt(tx))
    assert registry.functions.paused().call() is True
    with pytest.raises(ContractCustomError) as paused:
        registry.functions.register(subject, "{}").transact({"from": infra.operator})
    assert selector("EnforcedPause()").hex() in str(paused.value)
    tx = registry.functions.unpause().transact({"from": infra.operator})
    assert registry.events.Unpaused().process_receipt(w3.eth.get_transaction_receipt(tx))
    tx = registry.functions.register(subject, '{"id":"x"}').transact({"from": infra.operator})
    events = registry.events.DIDRegistered().process_receipt(w3.eth.get_transaction_receipt(tx))
    assert events[0]["args"]["subject"] == subject
    assert registry.functions.resolve(subject).call() == '{"id":"x"}'
