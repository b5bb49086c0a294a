"""What both files users write share - the stack file and the target file: the model base, the
runbook's severities and alert thresholds, and loading a YAML file into a model with one error
that names the file, the field and what was expected.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rollback_drill.files.userfiles import read_yaml
from rollback_drill.process.errors import SpecError


class FileModel(BaseModel):
    """Every model of a file users write: unknown keys are errors (a typo must not pass
    silently), values frozen once read, validators built on first use."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


Severity = Literal["critical", "high", "medium", "low"]


class Thresholds(FileModel):
    """The runbook's alert thresholds ("Monitoring During Rollback")."""

    response_time_warning_s: float = Field(default=2.0, gt=0)
    error_rate_critical: float = Field(default=0.05, ge=0, le=1)
    response_time_increase_critical: float = Field(default=0.5, gt=0)
    # A rise must also be this large to count: +50 % of a 3 ms median is jitter users
    # never notice, and on a busy machine it is noise.
    response_time_increase_floor_s: float = Field(default=0.01, ge=0)
    memory_warning: float = Field(default=0.9, gt=0, le=1)
    request_timeout_s: float = Field(default=5.0, gt=0)


M = TypeVar("M", bound=BaseModel)


def describe_errors(errors: ValidationError, path: Path) -> str:
    lines = [f"{path}: {errors.error_count()} problem(s)"]
    for err in errors.errors():
        field = ".".join(str(p) for p in err["loc"]) or "(top level)"
        got = err.get("input")
        text = repr(got) if len(repr(got)) <= 80 else repr(got)[:77] + "..."
        shown = "" if isinstance(got, dict | list) or got is None else f", got {text}"
        message = err["msg"].removeprefix("Value error, ")
        if not err["loc"]:  # a check across fields: its message starts with the field it names
            lines.append(f"  {message}")
            continue
        lines.append(f"  {field}: {message}{shown}")
    return "\n".join(lines)


def load_model(model: type[M], path: Path) -> M:
    """Parse one YAML file into `model`, or raise SpecError naming file, field and expectation."""
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise SpecError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return model.model_validate(data, context={"base": path.resolve().parent})
    except ValidationError as exc:
        raise SpecError(describe_errors(exc, path)) from None
