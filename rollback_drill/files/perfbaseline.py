"""A performance baseline: each flow's p95 response time, measured by a green verify run
before the change, so a later run can apply the runbook's "> 50 % response time increase"."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

FORMAT = "rollback-drill/performance/1"


class PerformanceBaselineError(ValueError):
    pass


def save(path: Path, p95_by_flow: Mapping[str, float], target: str) -> None:
    data = {"format": FORMAT, "target": target, "p95_s": dict(sorted(p95_by_flow.items()))}
    path.write_text(json.dumps(data, indent=2) + "\n")


def load(path: Path) -> dict[str, float]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise PerformanceBaselineError(f"{path}: not a JSON performance baseline: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise PerformanceBaselineError(f"{path}: format: expected {FORMAT!r}")
    values = data.get("p95_s")
    if not isinstance(values, dict) or not values:
        raise PerformanceBaselineError(f"{path}: p95_s: expected a mapping flow -> seconds")
    out = {}
    for flow, value in values.items():
        if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
            raise PerformanceBaselineError(f"{path}: p95_s.{flow}: expected seconds > 0")
        out[str(flow)] = float(value)
    return out
