"""Carrying a DID registry's state into a redeployed one, against a real anvil: a migration
killed halfway and run again, an RPC that drops and stalls transactions, another sender taking
the operator's nonce, a registration made while the state was being copied. Each time: no DID
lost, none registered twice - and `compare` is shown to see a loss and a duplicate when there
is one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from rollback_drill.chain import deploy as chain
from rollback_drill.chain import keys, migration
from rollback_drill.chain.deploy import Rpc
from rollback_drill.chain.registry import Registry
from rollback_drill.failures.rpcproxy import FlakyRpc, RpcFaults
from rollback_drill.process import proc
from rollback_drill.process.errors import KeyProblem
from rollback_drill.process.tools import find_tool
from rollback_drill.process.wait import Wait
from tests.paths import PROJECT_ROOT

BUILD = PROJECT_ROOT / "fixtures" / "safepsy" / "contracts" / "build"
OLD, NEW = BUILD / "1.9.0" / "DIDRegistry.json", BUILD / "1.4.0" / "DIDRegistry.json"
DIDS = 24


@dataclass
class Chain:
    url: str
    signer: keys.Signer
    key_file: Path


@pytest.fixture(scope="module")
def anvil(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    """anvil as chain 137 with a fresh operator key (owner-only file), funded."""
    work = tmp_path_factory.mktemp("anvil")
    (work / "home").mkdir()
    port = proc.free_port()
    server = proc.spawn(
        "anvil",
        [find_tool("anvil"), "--host", "127.0.0.1", "--port", str(port), "--chain-id", "137",
         "--silent", "--prune-history"],
        work / "anvil.log",
        env={"HOME": str(work / "home")},
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        server.wait_ready(lambda: proc.port_open(port), 10)
        signer = keys.Signer.generate()
        key_file = signer.write(work / "operator-key")
        chain.fund_dev_operator(url, signer.address, 10**22)
        yield Chain(url, signer, key_file)
    finally:
        server.stop(grace=2)


def _subject(n: int) -> bytes:
    return chain.keccak(f"did:safepsy:migration-test-{n}".encode())


@pytest.fixture
def registries(anvil: Chain) -> Iterator[tuple[Registry, Registry]]:
    """An old (1.9.0) registry holding DIDS documents, and an empty redeployed 1.4.0."""
    with Rpc(anvil.url) as rpc:
        old = chain.deploy_registry(rpc, OLD, "1.9.0", anvil.signer)
        source = Registry(rpc, old.address, OLD)
        for n in range(DIDS):
            source.register(anvil.signer, _subject(n), f'{{"id":"did{n}"}}', 10)
        source.register(anvil.signer, _subject(0), '{"id":"did0","v":2}', 10)  # replaced
        new = chain.deploy_registry(rpc, NEW, "1.4.0", anvil.signer)
        yield source, Registry(rpc, new.address, NEW)


def _registered(target: Registry) -> int:
    return len(target.registrations())


def test_a_migration_killed_halfway_and_rerun_loses_and_duplicates_nothing(
    anvil: Chain, registries: tuple[Registry, Registry]
) -> None:
    source, target = registries
    argv = [
        sys.executable, "-m", "rollback_drill.chain.migration", "--rpc", anvil.url,
        "--source", source.address, "--source-artifact", str(OLD),
        "--target", target.address, "--target-artifact", str(NEW),
    ]  # fmt: skip
    env = {**os.environ, keys.KEY_FILE_ENV: str(anvil.key_file)}
    env.pop(keys.KEY_ENV, None)
    running = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        Wait("a third migrated", 60).until(lambda: _registered(target) >= DIDS // 3)
    finally:
        running.send_signal(signal.SIGKILL)
        _, err = running.communicate(timeout=10)
    halfway = _registered(target)
    assert DIDS // 3 <= halfway < DIDS, f"killed after {halfway} of {DIDS}"
    assert anvil.signer.key.reveal() not in err.decode(), "the key is never printed"

    rerun = migration.carry_over(source, target, anvil.signer)
    assert rerun.already == halfway and rerun.carried == DIDS - halfway
    carried = migration.compare(source, target)
    assert carried.expected == DIDS
    assert carried.lost == () and carried.duplicated == ()
    assert carried.writes == DIDS  # each DID written once, across both runs
    assert target.resolve(_subject(0)) == '{"id":"did0","v":2}', "the last document wins"


def test_rpc_dropping_and_stalling_transactions_mid_migration(
    anvil: Chain, registries: tuple[Registry, Registry]
) -> None:
    source, target = registries
    faults = RpcFaults(drop_answer=(2, 9), drop_request=(4,), stall=(6,), stall_s=1.5)
    with FlakyRpc(anvil.url, faults) as proxy, Rpc(proxy.url, timeout_s=1.0) as flaky:
        done = migration.carry_over(
            Registry(flaky, source.address, OLD), Registry(flaky, target.address, NEW), anvil.signer
        )
    assert [f["call"] for f in proxy.log.faults] == [2, 4, 6, 9]
    assert done.carried == DIDS and done.rpc_failures >= 4
    assert done.broadcasts == DIDS + 1  # only the request the node never saw went out again
    carried = migration.compare(source, target)
    assert carried.lost == () and carried.duplicated == () and carried.writes == DIDS


def test_a_nonce_taken_by_another_sender_is_signed_again(
    anvil: Chain, registries: tuple[Registry, Registry]
) -> None:
    """The backend sends as the operator too (through the node): when it takes the nonce our
    transaction was signed with, ours is signed again with the next one - never lost."""
    _, target = registries

    class Racing(FlakyRpc):
        def _decide(self, method: str) -> str:  # type: ignore[override]
            if method == "eth_sendRawTransaction" and not self.log.faults:
                self.log.faults.append({"method": method, "fault": "nonce taken"})
                with Rpc(self.upstream) as direct:  # the other sender goes first
                    tx = {"from": anvil.signer.address, "to": target.address, "data": "0x"}
                    direct.call("eth_sendTransaction", [tx])
            return "forwarded"

    with Racing(anvil.url, RpcFaults()) as proxy, Rpc(proxy.url) as rpc:
        receipt = Registry(rpc, target.address, NEW).register(
            anvil.signer, _subject(999), '{"id":"raced"}', 10
        )
    assert receipt.resigned == 1
    assert target.resolve(_subject(999)) == '{"id":"raced"}'


def test_a_registration_during_the_migration_is_caught_up(
    anvil: Chain, registries: tuple[Registry, Registry]
) -> None:
    """Without a pause the old registry keeps taking registrations: the first pass misses
    one made after it read the state; the catch-up from the block it read up to carries it."""
    source, target = registries
    first = migration.carry_over(source, target, anvil.signer)
    late = _subject(500)
    source.register(anvil.signer, late, '{"id":"late"}', 10)
    missed = migration.compare(source, target)
    assert missed.lost == ("0x" + late.hex(),)  # compare sees the loss
    caught = migration.carry_over(source, target, anvil.signer, from_block=first.to_block + 1)
    assert caught.read == 1 and caught.carried == 1
    assert migration.compare(source, target).lost == ()


def test_compare_sees_a_duplicate_write(
    anvil: Chain, registries: tuple[Registry, Registry]
) -> None:
    """A naive replay (no look before writing) registers every DID a second time."""
    source, target = registries
    migration.carry_over(source, target, anvil.signer)
    document = target.resolve(_subject(3))
    assert document is not None
    target.register(anvil.signer, _subject(3), document, 10)
    assert migration.compare(source, target).duplicated == ("0x" + _subject(3).hex(),)


def test_a_key_file_others_can_read_is_refused(tmp_path: Path) -> None:
    signer = keys.Signer.generate()
    path = signer.write(tmp_path / "key")
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert keys.Signer.from_file(path).address == signer.address
    path.chmod(0o644)
    with pytest.raises(KeyProblem, match=r"readable by others .* expected owner-only"):
        keys.Signer.from_file(path)
    (tmp_path / "bad").write_text("not a key")
    (tmp_path / "bad").chmod(0o600)
    with pytest.raises(KeyProblem, match=r"bad: expected a 32-byte secp256k1 private key"):
        keys.Signer.from_file(tmp_path / "bad")


def test_the_key_never_shows(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from rollback_drill.process.secrets import redact

    signer = keys.Signer.generate()
    value = signer.key.reveal()
    for shown in (repr(signer), str(signer), f"{signer}", f"{signer.key}"):
        assert value not in shown and value[2:] not in shown
    assert signer.address in repr(signer)
    assert redact(f"key={value} bare={value[2:]}") == "key=*** bare=***"
    monkeypatch.setenv(keys.KEY_ENV, value)
    assert keys.operator_signer(tmp_path).source == keys.KEY_ENV
    monkeypatch.delenv(keys.KEY_ENV)
    with pytest.raises(KeyProblem, match=keys.KEY_FILE_ENV):
        keys.operator_signer(tmp_path)


def test_the_proxy_goes_away(anvil: Chain) -> None:
    with FlakyRpc(anvil.url, RpcFaults()) as proxy:
        port = int(proxy.url.rsplit(":", 1)[1])
        with Rpc(proxy.url) as rpc:
            assert rpc.quantity("eth_chainId") == 137
    deadline = time.monotonic() + 2
    while proc.port_open(port) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not proc.port_open(port)
    assert not any(t.name == "flaky-rpc" and t.is_alive() for t in threading.enumerate())


def test_a_stalled_answer_does_not_outlive_the_proxy(anvil: Chain) -> None:
    before = set(threading.enumerate())
    faults = RpcFaults(stall=(1,), stall_s=1.0, methods=("eth_chainId",))
    with (
        FlakyRpc(anvil.url, faults) as proxy,
        Rpc(proxy.url, timeout_s=0.2) as rpc,
        pytest.raises(chain.RpcUnavailable),
    ):
        rpc.call("eth_chainId")
    assert [t for t in threading.enumerate() if t not in before and t.is_alive()] == []


def test_reverts_are_named_from_the_artifact(
    anvil: Chain, registries: tuple[Registry, Registry]
) -> None:
    """web3's revert exceptions arrive as `Reverted` with the custom error's name, the gas
    estimate refusing before anything is signed."""
    source, target = registries
    stranger = keys.Signer.generate()
    chain.fund_dev_operator(anvil.url, stranger.address, 10**20)
    with pytest.raises(chain.Reverted) as not_owner:
        target.register(stranger, _subject(1), '{"id":"stranger"}', 10)
    assert not_owner.value.reason == "NotOwner"
    assert target.resolve(_subject(4321)) is None  # NotRegistered, named
    source.set_paused(anvil.signer, True)
    try:
        with pytest.raises(chain.Reverted) as paused:
            source.register(anvil.signer, _subject(1), '{"id":"paused"}', 10)
        assert paused.value.reason == "EnforcedPause"
    finally:
        source.set_paused(anvil.signer, False)


def test_a_stalled_answer_fails_a_web3_call_within_its_timeout(
    anvil: Chain, registries: tuple[Registry, Registry]
) -> None:
    """The answer comes 2 s late: the 0.3 s timeout must have fired, never a hang."""
    _, target = registries
    faults = RpcFaults(stall=(1,), stall_s=2.0, methods=("eth_call",))
    with (
        FlakyRpc(anvil.url, faults) as proxy,
        Rpc(proxy.url, timeout_s=0.3) as rpc,
        pytest.raises(chain.RpcUnavailable, match="eth_call: ReadTimeout"),
    ):
        Registry(rpc, target.address, NEW).version()
