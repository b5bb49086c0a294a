"""The small files that keep a drill's artifact folder honest, as pydantic models: the
in-progress marker naming the run that writes the folder, and the `drill.json` written in
place of the drill's own when the drill was interrupted (`evidence.artifacts`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

INTERRUPTED_FORMAT: Final = "rollback-drill/interrupted-drill/1"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.model_dump(mode="json"), indent=2) + "\n")


class InProgress(_Model):
    """`.in-progress`: the folder is being written by this run."""

    owner: str = Field(description="the run's process identity, `<pid>:<start ticks>`")
    test: str = Field(description="the pytest node id of the drill")
    started_utc: str

    @classmethod
    def read(cls, path: Path) -> InProgress | None:
        """The marker, or None when it is missing or not one (the folder is then nobody's)."""
        try:
            return cls.model_validate_json(path.read_bytes())
        except (OSError, ValidationError):
            return None


class InterruptedDrill(_Model):
    """`drill.json` of a drill that never wrote its own: it says interrupted, and why."""

    format: Literal["rollback-drill/interrupted-drill/1"] = INTERRUPTED_FORMAT
    test: str | None
    passed: Literal[False] = False
    interrupted: Literal[True] = True
    failure: str
    started_utc: str | None
    finished_utc: str
    finished_by: str = Field(description="teardown, or the next run that found it abandoned")
    files: list[str] = Field(description="what the folder holds: logs and backups stay")


class RollbackPoint(_Model):
    """`rollback-<stamp>.json`, the planned rollback's first step: the tag and the release
    of every application service it can go back to."""

    tag: str
    releases: dict[str, str] = Field(description="service -> release")


__all__ = ["INTERRUPTED_FORMAT", "InProgress", "InterruptedDrill", "RollbackPoint"]
