"""The runbook's "> 50 % response time increase", judged against a performance baseline the way
canary analysis judges a canary (Kayenta's Mann-Whitney judge with an effect size; Argo
Rollouts' analysis, where an inconclusive measurement is measured again before it counts).

A flow's samples are compared with the baseline's, operation by operation and route by route
(`checks.shift`): the ratio of response times with its interval at the target's confidence.
Where the verifier shares the machine with the services, the machine's foreign load then and
now is taken out (`checks.machine`), but only while that correction is smaller than the
regression looked for (x1.5 for the runbook's +50 %): a correction as large as the effect
cannot tell a busy machine from a slow release. Measured in CI, a login made twice as slow
was seen as x1.60 beside a machine 97 % busy (its baseline taken at 86 %), and the x2.27 the
shares called for turned it green. Past that size the client's own ratio is judged; within
only if it is within without help, regressed only if no correction up to
`machine.MAX_FACTOR` could explain it, otherwise borderline ("not verified": the machine was
too busy to tell). Then:
- the whole interval at or under the limit (+50 %), or a rise under the floor in seconds:
  within;
- the whole interval over the limit: regressed;
- otherwise borderline.
Anything but within is sampled again before it fails (up to `MAX_ROUNDS` rounds, within half
the verify deadline) and judged on all the samples: a burst of noise in one round is diluted,
a regression stays. Still borderline at the end, the flow is "not verified" (Argo Rollouts'
"inconclusive"): never a pass, and not the "not recovered" that would send an operator to
roll back again over a measurement that decided nothing.
Where the target grants the frontend's logs, the service is judged on its own time (nginx's
upstream time of each sampled request), the client's shown beside it: a rise the client saw
and the service did not is the verifier's or the network's, not the service's - within, and
the verdict says so. Without logs the client's time decides.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from rollback_drill.checks.machine import MAX_FACTOR, contention_factor
from rollback_drill.checks.shift import Shift, compare
from rollback_drill.files.perfbaseline import FlowSamples

MAX_ROUNDS = 3

State = Literal["within", "regressed", "borderline", "verifier"]


@dataclass(frozen=True)
class Machine:
    """The foreign share of the machine then and now, and whether it is taken out."""

    baseline_share: float | None
    current_share: float | None
    shared: bool

    trusted_up_to: float = MAX_FACTOR  # the judge sets it to the limit ratio

    @property
    def needed(self) -> float:
        """What the foreign load alone would explain (1 where it is not shared or unknown)."""
        if not self.shared or self.baseline_share is None or self.current_share is None:
            return 1.0
        return contention_factor(self.baseline_share, self.current_share)

    @property
    def trusted(self) -> bool:
        return self.needed <= self.trusted_up_to

    @property
    def factor(self) -> float:
        """What is taken out: the whole correction while trusted, nothing past it."""
        return self.needed if self.trusted else 1.0

    def shown(self) -> str:
        if self.current_share is None:
            return "machine load not measured"
        then = "?" if self.baseline_share is None else f"{self.baseline_share:.0%}"
        load = f"other work took {self.current_share:.0%} of the machine (baseline {then})"
        if not self.shared:
            return load + ", not applied: the services are on other machines"
        if not self.trusted:
            return (
                f"{load}: too busy to judge - it would explain x{self.needed:.2f}, more than "
                f"the x{self.trusted_up_to:.2f} looked for, so nothing is taken out"
            )
        return f"{load}: x{self.factor:.2f} taken out"


@dataclass(frozen=True)
class PerformanceJudgement:
    client: Shift
    judged: Shift
    server: Shift | None
    machine: Machine
    limit: float  # the ratio not to exceed: 1 + the runbook's increase
    floor_s: float
    rounds: int

    def _state_of(self, shift: Shift) -> State:
        if shift.high <= self.limit or shift.added_s <= self.floor_s:
            return "within"
        if self.machine.trusted and shift.low > self.limit:
            return "regressed"
        if shift.low / MAX_FACTOR > self.limit:
            return "regressed"  # too busy to judge, but no busy machine explains this much
        return "borderline"

    @property
    def decided_by(self) -> Shift:
        """The service's own time where nginx logged it, else the client's."""
        return self.server if self.server is not None else self.judged

    @property
    def state(self) -> State:
        state = self._state_of(self.decided_by)
        client_rose = self._state_of(self.judged) != "within"
        if state == "within" and self.server is not None and client_rose:
            return "verifier"
        return state

    def _measured(self) -> str:
        which = "the service's own time (nginx upstream)" if self.server else "response time"
        return f"{which} {self.decided_by.shown()} of the baseline"

    def problem(self) -> str | None:
        """What fails the flow: a rise whose whole interval is over the limit."""
        if self.state != "regressed":
            return None
        return (
            f"{self._measured()}, over the +{self.limit - 1:.0%} limit: a slower service"
            f"{self._context()}"
        )

    def undecided(self) -> str | None:
        """Why the judgement decided nothing: still borderline after every round."""
        if self.state != "borderline":
            return None
        return (
            f"performance not verified: {self._measured()} is neither within nor over "
            f"+{self.limit - 1:.0%} after {self.rounds} round(s) of samples{self._context()}"
        )

    def _context(self) -> str:
        parts = []
        if self.server is not None:
            parts.append(f"the client saw {self.judged.shown()}")
        if self.machine.needed != 1.0:
            parts.append(self.machine.shown())
        return "".join(f"; {p}" for p in parts)

    def shown(self) -> str:
        text = f"vs baseline {self.judged.shown()}"
        if self.state == "verifier" and self.server is not None:
            text += (
                f"; the client saw {self.client.shown()} but the service's own time is "
                f"{self.server.shown()}: a busy verifier or network, not the service"
            )
        if self.machine.needed != 1.0:
            text += f"; {self.machine.shown()}"
        return text

    def evidence(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "limit_ratio": self.limit,
            "floor_s": self.floor_s,
            "rounds": self.rounds,
            "judged": self.judged.evidence(),
            "client": self.client.evidence(),
            "server": self.server.evidence() if self.server else None,
            "machine": {
                "baseline_foreign_share": self.machine.baseline_share,
                "current_foreign_share": self.machine.current_share,
                "shares_machine_with_services": self.machine.shared,
                "factor_needed": round(self.machine.needed, 4),
                "correction_trusted": self.machine.trusted,
                "factor_taken_out": round(self.machine.factor, 4),
                "shown": self.machine.shown(),
            },
        }


def judge(
    baseline: FlowSamples,
    client_s: Mapping[str, Sequence[float]],
    server_s: Mapping[str, Sequence[float]],
    machine: Machine,
    confidence: float,
    increase: float,
    floor_s: float,
    rounds: int,
) -> PerformanceJudgement | None:
    """None when no operation has samples both in the baseline and now."""
    client = compare(baseline.client_s, client_s, confidence)
    if client is None:
        return None
    machine = dataclasses.replace(machine, trusted_up_to=1 + increase)
    factor = machine.factor
    server = compare(baseline.server_s, server_s, confidence) if baseline.server_s else None
    return PerformanceJudgement(
        client=client,
        judged=client.deflated(factor),
        server=server.deflated(factor) if server else None,
        machine=machine,
        limit=1 + increase,
        floor_s=floor_s,
        rounds=rounds,
    )
