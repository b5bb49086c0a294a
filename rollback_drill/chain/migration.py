"""Carrying a DID registry's state into a redeployed one - a redeployed contract starts empty -
and measuring what arrived.

The old registry's state comes from its events (registry.py says why); the operator replays
each DID's document into the new registry. Idempotent by construction: every DID is first
looked up on the new registry and skipped when it already resolves to the old one's document
(the run before was interrupted), and every registration is one transaction signed once and
resent, never signed again, when the RPC fails (chain.send_transaction). So a migration cut
off anywhere and run again registers each DID exactly once.

`python -m rollback_drill.chain.migration` runs it from a shell (the key from the environment, as
keys.py says): what an operator runs, and what a test kills halfway.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rollback_drill.chain.deploy import Rpc
from rollback_drill.chain.keys import Signer, operator_signer
from rollback_drill.chain.registry import Registry, state


@dataclass(frozen=True)
class Migration:
    """One run of the carry-over: what it read, what it wrote, what it cost."""

    source: str
    target: str
    from_block: int
    to_block: int  # the old registry's state as of this block
    read: int  # DIDs in that state
    carried: int  # registered on the new registry by this run
    already: int  # found there already (an earlier run was interrupted)
    gas_used: int
    cost_wei: int
    seconds: float
    broadcasts: int  # signed transactions sent, resends included
    rpc_failures: int  # RPC calls that got no usable answer (and were retried)
    resigned: int  # nonces another sender of the account took first

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "seconds": round(self.seconds, 3)}


def carry_over(
    source: Registry,
    target: Registry,
    signer: Signer,
    *,
    from_block: int = 0,
    to_block: int | None = None,
    timeout_s: float = 30.0,
    progress: Callable[[int], None] | None = None,
) -> Migration:
    """Replay the source's state in [from_block, to_block] (to_block: the head now) into the
    target; `timeout_s` bounds each DID's registration, retries included."""
    started = time.monotonic()
    head = source.rpc.quantity("eth_blockNumber") if to_block is None else to_block
    documents = state(source.registrations(from_block, head))
    carried = already = gas = cost = broadcasts = failures = resigned = 0
    for subject, document in documents.items():
        if target.resolve(subject) == document:
            already += 1
            continue
        receipt = target.register(signer, subject, document, timeout_s)
        carried += 1
        gas += receipt.gas_used
        cost += receipt.cost_wei
        broadcasts += receipt.broadcasts
        failures += receipt.rpc_failures
        resigned += receipt.resigned
        if progress is not None:
            progress(carried)
    return Migration(
        source.address, target.address, from_block, head, len(documents), carried, already,
        gas, cost, time.monotonic() - started, broadcasts, failures, resigned,
    )  # fmt: skip


@dataclass(frozen=True)
class Carried:
    """The old registry's state against the new one: every DID must resolve there to the same
    document (else lost), and the migration must have written each only once."""

    expected: int  # DIDs in the old registry's state
    lost: tuple[str, ...]  # subjects (0x-hex) missing or different on the new registry
    duplicated: tuple[str, ...]  # subjects written twice with the same document in the window
    writes: int  # registrations on the new registry in the window

    def to_json(self) -> dict[str, Any]:
        return {
            "expected": self.expected,
            "lost": len(self.lost),
            "duplicated": len(self.duplicated),
            "writes": self.writes,
            "lost_subjects": list(self.lost[:20]),
            "duplicated_subjects": list(self.duplicated[:20]),
        }


def compare(
    source: Registry, target: Registry, window: tuple[int, int | None] = (0, None)
) -> Carried:
    """`window`: the new registry's blocks in which only the migration wrote to it (from its
    deployment until the backend was pointed at it); writes there are counted per DID."""
    documents = state(source.registrations())
    lost = tuple(
        "0x" + subject.hex()
        for subject, document in documents.items()
        if target.resolve(subject) != document
    )
    writes = target.registrations(window[0], window[1])
    counts = Counter((w.subject, w.document) for w in writes)
    duplicated = tuple(sorted({"0x" + s.hex() for (s, _), n in counts.items() if n > 1}))
    return Carried(len(documents), lost, duplicated, len(writes))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rollback_drill.chain.migration", description=__doc__
    )
    parser.add_argument("--rpc", required=True, help="the chain's JSON-RPC URL")
    parser.add_argument("--source", required=True, help="the old registry's address")
    parser.add_argument("--source-artifact", required=True, type=Path)
    parser.add_argument("--target", required=True, help="the redeployed registry's address")
    parser.add_argument("--target-artifact", required=True, type=Path)
    parser.add_argument("--from-block", type=int, default=0)
    parser.add_argument("--to-block", type=int, default=None)
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per DID")
    args = parser.parse_args(argv)
    signer = operator_signer()
    with Rpc(args.rpc) as rpc:
        done = carry_over(
            Registry(rpc, args.source, args.source_artifact),
            Registry(rpc, args.target, args.target_artifact),
            signer,
            from_block=args.from_block,
            to_block=args.to_block,
            timeout_s=args.timeout,
            progress=lambda n: print(f"carried {n}", file=sys.stderr, flush=True),
        )
    print(json.dumps(done.to_json()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
