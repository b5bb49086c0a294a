"""A performance baseline: every sample of each flow, per operation and route, from a green
verify run before the change - when and where it was taken, and how fast the machine was -
so a later run can judge the runbook's "> 50 % response time increase" as statistics
(`checks.shift`) instead of one p95 against one stored number.

Format 2. A format-1 file (one p95 per flow) is refused with the command that writes a new
one: a single number cannot carry an interval.
"""

from __future__ import annotations

import json
import math
import os
import platform
import socket
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rollback_drill.files.specmodel import describe_errors
from rollback_drill.files.userfiles import read_json
from rollback_drill.process.errors import PerformanceBaselineError

FORMAT = "rollback-drill/performance/2"
OLD_FORMAT = "rollback-drill/performance/1"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FlowSamples(_Model):
    """One flow's response times by stratum ("POST /api/auth/login (nginx https)"): client
    times as the verifier saw them, and the server's own (nginx's upstream time) where the
    target granted its logs."""

    client_s: dict[str, list[float]] = Field(min_length=1)
    server_s: dict[str, list[float]] = Field(default_factory=dict)
    foreign_share: float | None = Field(
        default=None, ge=0, le=1, description="the machine's share other work took (checks.machine)"
    )


class Where(_Model):
    host: str
    cpus: int = Field(ge=1)
    load_average: tuple[float, float, float]
    python: str


class PerformanceBaseline(_Model):
    format: Literal["rollback-drill/performance/2"] = "rollback-drill/performance/2"
    target: str
    taken_at: datetime
    where: Where
    flows: dict[str, FlowSamples] = Field(min_length=1)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.model_dump(mode="json"), indent=1) + "\n")


def schema() -> dict[str, Any]:
    """The JSON schema of format 2, generated from the model."""
    return PerformanceBaseline.model_json_schema()


def here() -> Where:
    return Where(
        host=socket.gethostname(),
        cpus=os.cpu_count() or 1,
        load_average=os.getloadavg(),
        python=platform.python_version(),
    )


def build(target: str, flows: Mapping[str, FlowSamples]) -> PerformanceBaseline:
    return PerformanceBaseline(
        target=target, taken_at=datetime.now(UTC), where=here(), flows=dict(sorted(flows.items()))
    )


def load(path: Path) -> PerformanceBaseline:
    data = read_json(path, "a JSON performance baseline")
    if isinstance(data, dict) and data.get("format") == OLD_FORMAT:
        raise PerformanceBaselineError(
            f"{path}: format: {OLD_FORMAT} holds one p95 per flow, which cannot be judged with "
            f"an interval; expected {FORMAT}: write a new one with `rollback-drill verify "
            "--target FILE --save-performance FILE` on a healthy environment"
        )
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise PerformanceBaselineError(f"{path}: format: expected {FORMAT!r}")
    try:
        baseline = PerformanceBaseline.model_validate(data)
    except ValidationError as exc:
        raise PerformanceBaselineError(describe_errors(exc, path)) from None
    for flow, samples in baseline.flows.items():
        for kind, strata in (("client_s", samples.client_s), ("server_s", samples.server_s)):
            for stratum, values in strata.items():
                # nginx logs a time to the millisecond: a quick answer is 0.000
                if not values or any(not (math.isfinite(v) and v >= 0) for v in values):
                    raise PerformanceBaselineError(
                        f"{path}: flows.{flow}.{kind}.{stratum}: expected seconds >= 0"
                    )
    return baseline
