"""The engine's one way to talk to the chain: web3 (`Rpc.w3`), every call bounded by a
timeout, its exceptions mapped onto the project's three (process/errors.py): `RpcUnavailable`
(no usable answer), `RpcError` (the node answered an error), `Reverted` (a call or transaction
reverted, named by the artifact's custom error).

web3's provider is built without its retries (`exception_retry_configuration=None`): they
retry only read methods, sleep between tries past the timeout the caller asked for, and know
nothing of nonces; whether and when to send again is transactions.py's decision. Its requests
session ignores proxy variables (`trust_env = False`), as the light client did: the chain is
talked to directly. web3's default middleware is off too: its chain-id validation asks the
node for eth_chainId before every eth_call and gas estimate, its gas-price strategy, ENS
names and AttributeDicts serve nothing here (the engine signs locally, with the chain id it
asked for once).

Exactly-once sending is transactions.py, a thin layer on `w3.eth`: web3 has no middleware
for it - its `send_raw_transaction` goes out once and raises when the answer is lost, and its
`wait_for_transaction_receipt` polls a hash but never sends the bytes again nor notices that
another sender took the nonce.

The verify read path (checks/chain.py, checks/did_stores.py: eth_call and eth_getCode only)
keeps the light client of jsonrpc.py: importing web3 costs about 1.8 s on a quiet machine,
where verify takes 0.65 s against a budget of 0.75 s. `benchmarks/bench_verify.py --runs 5
--only "rollback-drill verify" --only "rollback-drill verify + web3"` printed, median of 5 at
load average 12-20: 4.49 s light, 9.65 s with web3 imported. Both share one ABI/artifact
module (artifacts.py: one `selector`, one artifact reader).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from json import JSONDecodeError
from typing import TYPE_CHECKING, Any

from rollback_drill.chain.artifacts import Artifact
from rollback_drill.chain.jsonrpc import result_of
from rollback_drill.process.errors import Reverted, RpcError, RpcUnavailable

if TYPE_CHECKING:
    from web3 import Web3
    from web3.contract import Contract


class Rpc:
    """One JSON-RPC endpoint through web3; every call bounded by `timeout_s`. Thread-safe."""

    def __init__(self, url: str, timeout_s: float = 5.0) -> None:
        import requests
        from web3 import HTTPProvider, Web3

        self.url = url
        self._session = requests.Session()
        self._session.trust_env = False
        self.w3: Web3 = Web3(
            HTTPProvider(
                url,
                request_kwargs={"timeout": timeout_s},
                session=self._session,
                exception_retry_configuration=None,
            ),
            middleware=[],
        )

    def __enter__(self) -> Rpc:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._session.close()

    def call(self, method: str, params: Sequence[Any] = ()) -> Any:
        """A raw JSON-RPC call through web3's provider (anvil_* and the like, which web3 has
        no method for): the answer's `result`, as the node sent it."""
        with mapped(method):
            answer = self.w3.provider.make_request(method, list(params))  # type: ignore[arg-type]
        return result_of(method, 200, answer)

    def quantity(self, method: str, params: Sequence[Any] = ()) -> int:
        return int(str(self.call(method, params)), 16)

    def contract(self, artifact: Artifact, address: str) -> Contract:
        """web3's contract object at `address` for `artifact`'s ABI."""
        from web3 import Web3

        return self.w3.eth.contract(
            address=Web3.to_checksum_address(address), abi=list(artifact.abi)
        )

    def deployer(self, artifact: Artifact) -> type[Contract]:
        """web3's contract class for `artifact`'s ABI and bytecode, to deploy it."""
        return self.w3.eth.contract(abi=list(artifact.abi), bytecode=artifact.bytecode)


@contextmanager
def mapped(method: str, errors: dict[bytes, str] | None = None) -> Iterator[None]:
    """web3's and requests' exceptions as the project's: a revert as `Reverted` naming its
    custom error (from `errors`, the artifact's), an answered error as `RpcError`, no answer
    (refused, timed out, dropped, not JSON-RPC) as `RpcUnavailable`. web3's
    `TransactionNotFound` passes through: it is an answer (the node does not have it)."""
    from web3.exceptions import (
        BadResponseFormat,
        ContractLogicError,
        ProviderConnectionError,
        TransactionNotFound,
        Web3RPCError,
    )

    try:
        yield
    except TransactionNotFound:
        raise
    except ContractLogicError as exc:
        message = str(exc.message or "")
        raise Reverted(_reason(exc.data, message, errors or {}), f"{method}: {message}") from None
    except Web3RPCError as exc:
        error = (exc.rpc_response or {}).get("error")
        if isinstance(error, dict):
            raise RpcError(
                method, int(error.get("code", 0)), str(error.get("message", "")), error.get("data")
            ) from None
        raise RpcError(method, 0, str(exc.message)) from None
    except (ProviderConnectionError, BadResponseFormat, JSONDecodeError, OSError) as exc:
        # requests' errors (refused, timed out, dropped) are OSErrors
        raise RpcUnavailable(f"{method}: {type(exc).__name__}: {exc}") from None


def _reason(data: Any, message: str, errors: dict[bytes, str]) -> str:
    """The custom error a revert's data names, "error 0x..." for one the artifact does not
    declare, the message's reason string, or plain "revert"."""
    data = data.get("data") if isinstance(data, dict) else data
    is_custom = isinstance(data, str) and data.startswith("0x") and len(data) >= 10
    if is_custom and data[:10] != "0x08c379a0":  # Error(string): the message carries it
        return errors.get(bytes.fromhex(data[2:10]), f"error {data[:10]}")
    reason = message.split("execution reverted", 1)[-1].lstrip(": ").strip()
    return reason or "revert"
