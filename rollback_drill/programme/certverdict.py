"""Whether a certification run certifies the release pair: the verdict and every reason it is
not - no record, a record whose sha256 sidecar does not match, no drill, a drill of another
pair or environment, one failed or over budget, a test that failed before its drill could
record anything (from the JUnit XML), a non-zero pytest exit.

Separate from `programme.certificate` (the certificate's text) and `programme.certify` (the
command) because this is the gate itself: `judge` reads only the record and the run's exit
status, and the exit status of `rollback-drill certify` is its verdict.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from rollback_drill.files.drillrecord import RunRecord
from rollback_drill.files.spec import PRODUCTION


@dataclass
class Verdict:
    certified: bool
    reasons: list[str] = field(default_factory=list)


def junit_problems(path: Path) -> list[str]:
    """Tests that failed or errored before a drill could record anything (e.g. the stack never
    came up at the good release), from the JUnit XML: the certificate must say why."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return []
    problems = []
    for case in root.iter("testcase"):
        for kind in ("failure", "error"):
            node = case.find(kind)
            if node is not None:
                message = (node.get("message") or node.text or kind).strip().splitlines()
                first = message[0] if message else kind
                problems.append(f"{case.get('name')}: {kind}: {first[:300]}")
    return problems


def judge(
    data: RunRecord | None,
    *,
    exit_status: int,
    bad: str,
    good: str,
    sidecar_ok: bool,
    problems: list[str] | None = None,
    environment: str = PRODUCTION,
) -> Verdict:
    """Certified only when there is evidence (a record whose hash checks), at least one drill
    of exactly this release pair, every drill passed within budget, and every drill ran in
    the environment certified (a production drill does not certify staging, nor the reverse)."""
    reasons: list[str] = []
    if data is None:
        reasons = [f"no drill record was written (pytest exit status {exit_status})"]
        return Verdict(False, reasons + (problems or []))
    if not sidecar_ok:
        reasons.append("the drill record does not match its sha256 sidecar")
    if not data.drills:
        reasons.append("no drill ran")
    for d in data.drills:
        name = f"{d.procedure} ({d.test})"
        if (d.bad_release, d.good_release) != (bad, good):
            reasons.append(f"{name} rolled back {d.bad_release} -> {d.good_release}")
        if d.environment != environment:
            reasons.append(f"{name} ran in {d.environment}, not {environment}")
        if d.outcome == "over_budget":
            ttr, budget = d.time_to_recover_s, d.budget_s
            reasons.append(
                f"{name} ran over budget: "
                + (f"not recovered when its {budget:g} s ran out" if ttr is None
                   else f"{ttr:.2f} s > {budget:.0f} s")
            )  # fmt: skip
        elif d.outcome != "passed":
            first = (d.failure or "failed").splitlines()[0]
            reasons.append(f"{name} failed: {first}")
        elif d.test_outcome == "failed":
            reasons.append(f"{name}: the drill test failed after the drill")
    if exit_status != 0:
        reasons.append(f"pytest exited {exit_status}")
        for problem in problems or []:
            test_name = problem.split(":", 1)[0]
            if not any(test_name in reason for reason in reasons):  # not already explained
                reasons.append(problem)
    return Verdict(not reasons, reasons)


__all__ = ["Verdict", "judge", "junit_problems"]
