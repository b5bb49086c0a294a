"""The runbook's "Monitor resource usage" (`docker stats --no-stream`) against its alert
threshold "Memory usage > 90 %: Warning", where the target grants stats access. A warning
threshold crossed is a verification that did not come out clean: it fails, saying warning."""

from __future__ import annotations

from rollback_drill.checks.result import Check, CheckResult
from rollback_drill.process.errors import CheckSkipped
from rollback_drill.stack.target import Target


def _memory(target: Target) -> CheckResult:
    if target.stats is None:
        raise CheckSkipped("the target grants no stats access (access.stats)")
    usage = target.stats.memory()
    if not usage:
        return CheckResult("resources.memory", False, "stats access returned no service")
    limit = target.thresholds.memory_warning
    ordered = sorted(usage.items())
    high = [f"{name} {s.fraction:.0%}" for name, s in ordered if s.fraction > limit]
    worst_name, worst = max(ordered, key=lambda item: item[1].fraction)
    summary = (
        f"WARNING memory over {limit:.0%}: " + ", ".join(high)
        if high
        else f"memory under {limit:.0%} for {len(ordered)} services "
        f"(highest {worst_name} {worst.fraction:.1%})"
    )
    rows = [
        {"service": name, "used_bytes": s.used_bytes, "limit_bytes": s.limit_bytes,
         "fraction": round(s.fraction, 4)}
        for name, s in ordered
    ]  # fmt: skip
    return CheckResult(
        "resources.memory", not high, summary, {"limit_fraction": limit, "services": rows}
    )


CHECKS = [
    Check(
        "resources.memory",
        "resources",
        _memory,
        doc="docker stats --no-stream",
        runbook="docker stats --no-stream",
    )
]
