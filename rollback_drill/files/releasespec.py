"""A release file, one per version the stack file lists: what each service runs in that
release (environment, patches over the base sources), its contract version, the defect it
carries in the runbook's words and the matrix row it must reach, and the data migration its
deploy runs once.

Separate from `files.spec` because a release is its own file; what ties it to the stack file
(services known, patches present, `previous` chains without loops) is checked there, where
both are loaded.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from rollback_drill.files.fields import NonEmptyStr
from rollback_drill.files.specmodel import FileModel, Severity


class ServiceRelease(FileModel):
    env: dict[str, str] = Field(default_factory=dict)
    patches: list[str] = Field(
        default_factory=list,
        description="unified diffs (files relative to this release file; paths inside them "
        "relative to the stack file, for `patch -p1`) that turn the stack's base sources into "
        "this release's code",
    )


RunbookIssue = Literal[
    "service unavailability",
    "data corruption",
    "security breach",
    "performance degradation",
    "database connectivity",
    "ssl certificate failure",
    "minor bug with workaround",
    "major bug",
    "performance optimization",
    "feature rollback",
    "configuration change",
]


class DefectSpec(FileModel):
    """What is wrong with a release, in the runbook's words, and the matrix row it must reach."""

    summary: str
    issue: RunbookIssue
    services: list[str] = Field(min_length=1)
    severity: Severity
    rollback: Literal["full", "partial", "database", "configuration", "contract"] = "full"


class MigrationSpec(FileModel):
    """A data migration the deploy runs once, after the release's code is out (`npm run
    migrate`): the command, run in the named service's environment (`docker exec`)."""

    service: NonEmptyStr
    command: list[NonEmptyStr] = Field(min_length=1)


class ReleaseSpec(FileModel):
    version: NonEmptyStr
    previous: NonEmptyStr | None = None
    contract_version: NonEmptyStr
    notes: str = ""
    defect: DefectSpec | None = None
    services: dict[str, ServiceRelease]
    migration: MigrationSpec | None = None


__all__ = ["DefectSpec", "MigrationSpec", "ReleaseSpec", "RunbookIssue", "ServiceRelease"]
