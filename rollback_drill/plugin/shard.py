"""One run spread over N machines: `--shard K/N` keeps the K-th of N shares of the collected
tests and deselects the rest (pytest reports them as deselected).

Every shard computes the same plan on its own, from what it collected and the drills'
recorded durations (`test_seconds` in the drill records under `--shard-durations`, by default
`--drill-records`): longest first, each to the shard with the least work so far (ties to the
lower shard, and tests of equal weight ordered by the sha256 of their node id, so the plan
depends on nothing but its inputs). A test without a recorded duration weighs the median of
the known ones (1 s when none is known): with no history the plan is a balance by count in
hash order. The plan's digest goes into each shard's record; `rollback-drill report --merge`
refuses shards whose plans differ - machines that saw other tests or another history would
otherwise run some drills twice and others never.

Registered by `core.pytest_addhooks` (its option must exist before the command line is
parsed); light on purpose, as everything a `pytest -m verify` start loads."""

from __future__ import annotations

import hashlib
import json
import re
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # the record's model is loaded only when a sharded run writes its record
    from rollback_drill.files.drillrecord import ShardPart

plan_key = pytest.StashKey[dict[str, Any]]()  # this shard's part of the record
WORKER_SHARD = "rollback_drill_shard"  # xdist workeroutput key: the plan a worker computed
_SPEC = re.compile(r"^(\d+)/(\d+)$")
UNKNOWN_S = 1.0  # what a test weighs when no duration of any test is known


@dataclass(frozen=True)
class ShardSpec:
    index: int  # 1-based
    count: int


def parse(text: str) -> ShardSpec:
    """`K/N` with 1 <= K <= N; anything else is one clear error."""
    found = _SPEC.match(text.strip())
    if found is None or not 1 <= int(found.group(1)) <= int(found.group(2)):
        raise pytest.UsageError(f"--shard: expected K/N with 1 <= K <= N (e.g. 1/3), got {text!r}")
    return ShardSpec(int(found.group(1)), int(found.group(2)))


@dataclass(frozen=True)
class ShardPlan:
    count: int
    collected: tuple[str, ...]  # every test before sharding, in collection order
    assignment: Mapping[str, int]  # node id -> shard (1-based)
    weights: Mapping[str, float]  # node id -> seconds the plan assumed
    recorded: int  # how many weights came from a record

    def tests(self, index: int) -> list[str]:
        return [t for t in self.collected if self.assignment[t] == index]

    def load_s(self, index: int) -> float:
        return sum(self.weights[t] for t in self.tests(index))

    @property
    def digest(self) -> str:
        """Same inputs, same digest, on every machine: what the merge compares."""
        rows = [[t, self.assignment[t]] for t in self.collected]
        return hashlib.sha256(json.dumps([self.count, rows]).encode()).hexdigest()

    @property
    def balanced_by(self) -> str:
        if not self.recorded:
            return f"no recorded durations: {len(self.collected)} tests by count, in id-hash order"
        return f"recorded durations of {self.recorded} of {len(self.collected)} tests"

    def to_json(self, index: int) -> dict[str, Any]:
        return {
            "index": index,
            "count": self.count,
            "plan_sha256": self.digest,
            "balanced_by": self.balanced_by,
            "planned_s": round(self.load_s(index), 3),
            "collected": list(self.collected),
            "tests": self.tests(index),
        }


def _id_hash(node_id: str) -> str:
    return hashlib.sha256(node_id.encode()).hexdigest()


def plan(collected: Sequence[str], count: int, durations: Mapping[str, float]) -> ShardPlan:
    """Longest-processing-time-first over `count` shards (see the module docstring)."""
    known = [durations[t] for t in collected if t in durations]
    default = statistics.median(known) if known else UNKNOWN_S
    weights = {t: float(durations.get(t, default)) for t in collected}
    loads = [0.0] * count
    assignment: dict[str, int] = {}
    for test in sorted(collected, key=lambda t: (-weights[t], _id_hash(t))):
        lightest = min(range(count), key=lambda i: (loads[i], i))
        loads[lightest] += weights[test]
        assignment[test] = lightest + 1
    return ShardPlan(count, tuple(collected), assignment, weights, len(known))


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("rollback-drill")
    group.addoption(
        "--shard",
        default=None,
        metavar="K/N",
        help="run only the K-th of N shares of the selected tests (by recorded duration, "
        "stable by node id); merge the shards with `rollback-drill report --merge`",
    )
    group.addoption(
        "--shard-durations",
        default=None,
        metavar="DIR",
        help="drill records whose test_seconds balance the shards (default: --drill-records)",
    )


@pytest.hookimpl(trylast=True)  # after every other selection: shard what would run
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    text = config.getoption("--shard")
    if not text:
        return
    spec = parse(text)
    from rollback_drill.evidence import record

    where = config.getoption("--shard-durations") or config.getoption("--drill-records")
    made = plan([i.nodeid for i in items], spec.count, record.durations(Path(where)))
    config.stash[plan_key] = made.to_json(spec.index)
    mine = set(made.tests(spec.index))
    dropped = [i for i in items if i.nodeid not in mine]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [i for i in items if i.nodeid in mine]


def pytest_report_collectionfinish(config: pytest.Config) -> str | None:
    shard = config.stash.get(plan_key, None)
    if shard is None:
        return None
    return (
        f"shard {shard['index']}/{shard['count']}: {len(shard['tests'])} of "
        f"{len(shard['collected'])} tests, ~{shard['planned_s']:.0f} s planned "
        f"({shard['balanced_by']}; plan {shard['plan_sha256'][:12]})"
    )


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """Under pytest-xdist the workers collect; the controller writes the record."""
    shard = getattr(node, "workeroutput", {}).get(WORKER_SHARD)
    if shard and plan_key not in node.config.stash:
        node.config.stash[plan_key] = json.loads(shard)


def of_run(config: pytest.Config) -> ShardPart | None:
    """This shard's part of the run's record; None when the run is not sharded."""
    found = config.stash.get(plan_key, None)
    if found is None:
        return None
    from rollback_drill.files.drillrecord import ShardPart

    return ShardPart.model_validate(found)


@pytest.hookimpl(tryfirst=True)  # before the record is written with the exit status
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A worker hands its plan to the controller; a shard the plan gave nothing is a shard
    that did all it had to (exit 0, not pytest's 5 "no tests ran")."""
    config = session.config
    shard = config.stash.get(plan_key, None)
    workeroutput = getattr(config, "workeroutput", None)
    if workeroutput is not None and shard is not None:
        workeroutput[WORKER_SHARD] = json.dumps(shard)
    if (
        shard is not None
        and not shard["tests"]
        and exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED
    ):
        session.exitstatus = pytest.ExitCode.OK
