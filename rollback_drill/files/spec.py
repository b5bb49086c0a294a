"""The stack file, the file users write to describe their stack, validated once, with errors
that name the file, the field and what was expected (an operator fixing a file at 3 a.m. needs
all three): the file as a whole (`StackSpec`), its environments (profiles), the checks that
cross its sections and its release files, and the loaded stack (`LoadedStack`, `load_stack`)
everything else reads.

Its sections are models of their own: what the stack runs in `files.servicespec`, how drills
observe and judge in `files.drillspec`, a release file in `files.releasespec`, the programme's
cadences and communication in `files.programmespec`; the target file is `files.targetspec`.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Annotated, get_args

from pydantic import Field, model_validator

from rollback_drill.files.drillspec import Classification, DecisionRow, DrillSettings
from rollback_drill.files.fields import NonEmptyStr, Port, unique_severities
from rollback_drill.files.programmespec import (
    CadenceName,
    CadenceSpec,
    CommunicationSpec,
    default_cadences,
)
from rollback_drill.files.releasespec import ReleaseSpec
from rollback_drill.files.servicespec import (
    ChainSpec,
    SeedSpec,
    ServiceSpec,
    StoresSpec,
    TestAccountSpec,
)
from rollback_drill.files.specmodel import FileModel, Severity, Thresholds, load_model
from rollback_drill.process.errors import SpecError as SpecError

ProfileName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]*$")]
PRODUCTION = "production"
"""The environment a stack file describes without a profile."""


class PortRange(FileModel):
    """Where an environment's stacks take their host ports: a range of its own, so staging
    and production on one host never meet (ports inside it are still chosen free, at random:
    drills run in parallel)."""

    first: Port
    last: Port

    @model_validator(mode="after")
    def _wide_enough(self) -> PortRange:
        if self.last - self.first + 1 < 32:
            raise ValueError(
                f"expected a range of at least 32 ports (a stack takes about ten, drills run "
                f"in parallel), got {self.first}-{self.last}"
            )
        return self


class ProfileSpec(FileModel):
    """Another environment of the stack (the runbook's staging): what differs from the stack
    file's production values. `rollback-drill up --environment NAME` brings it up; drills
    given `--environment NAME` (and the staging drills always) run on stacks made from it."""

    description: str = ""
    release: NonEmptyStr | None = Field(
        default=None, description="the release it runs; its drills roll back to it"
    )
    seed_users: int | None = Field(default=None, ge=1, description="its data volume")
    seed: int | None = Field(default=None, description="its own data: another seed")
    ports: PortRange | None = None


class StackSpec(FileModel):
    name: str
    runbook: str
    services: dict[str, ServiceSpec]
    stores: StoresSpec = Field(default_factory=StoresSpec)
    chain: ChainSpec
    seed: SeedSpec
    test_account: TestAccountSpec
    releases: list[str] = Field(min_length=1)
    thresholds: Thresholds = Field(default_factory=Thresholds)
    classification: Classification = Field(default_factory=Classification)
    drills: DrillSettings = Field(default_factory=DrillSettings)
    decision_matrix: list[DecisionRow] = Field(min_length=1)
    cadences: dict[CadenceName, CadenceSpec] = Field(default_factory=default_cadences)
    communication: CommunicationSpec = Field(default_factory=CommunicationSpec)
    profiles: dict[ProfileName, ProfileSpec] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _production_is_the_file(self) -> StackSpec:
        if PRODUCTION in self.profiles:
            raise ValueError(
                f"profiles.{PRODUCTION}: the stack file itself is production; name the profile "
                "after the environment it describes (e.g. staging)"
            )
        return self

    @model_validator(mode="after")
    def _references_resolve(self) -> StackSpec:
        for name, svc in self.services.items():
            for role, target in svc.upstreams.items():
                if target not in self.services:
                    raise ValueError(
                        f"services.{name}.upstreams.{role} names unknown service {target!r}"
                    )
        return self

    @model_validator(mode="after")
    def _services_the_harness_reaches(self) -> StackSpec:
        apps = [n for n, s in self.services.items() if s.kind == "app"]
        missing = [n for n in ("backend", "ai-chatbot") if n not in apps]
        if missing or not any(s.kind == "nginx" for s in self.services.values()):
            raise ValueError(
                f"services: expected app services `backend` and `ai-chatbot` and one nginx "
                f"front (the harness reaches them by these names); missing {missing or 'nginx'}"
            )
        return self

    @model_validator(mode="after")
    def _every_severity_decided(self) -> StackSpec:
        unique_severities(self.decision_matrix, get_args(Severity))
        return self


def _load_releases(path: Path, spec: StackSpec, files: dict[str, Path]) -> dict[str, ReleaseSpec]:
    """The release files a stack file lists: each valid, one file per version, services known,
    patches present, and every `previous` chain ending (no loop) at a listed release. Fills
    `files` with each version's release file."""
    releases: dict[str, ReleaseSpec] = {}
    for index, rel in enumerate(spec.releases):
        file = path.parent / rel
        if file.resolve() in [f.resolve() for f in files.values()]:
            raise SpecError(
                f"{path}: releases.{index}: {rel!r} is listed twice; expected each release "
                "file once"
            )
        if not file.is_file():
            raise SpecError(
                f"{path}: releases.{index}: expected an existing release file, {rel!r} not found"
            )
        release = load_model(ReleaseSpec, file)
        unknown = set(release.services) - set(spec.services)
        if unknown:
            raise SpecError(
                f"{file}: services: unknown service(s) {sorted(unknown)}, "
                f"expected names from {path.name}: {sorted(spec.services)}"
            )
        if release.version in releases:
            raise SpecError(
                f"{file}: version: {release.version!r} is also the version in "
                f"{files[release.version]}; expected one release file per version"
            )
        _check_release_parts(file, release, spec)
        if spec.chain.contracts and release.contract_version not in spec.chain.contracts:
            raise SpecError(
                f"{file}: contract_version: {release.contract_version!r} is not one of the "
                f"contract versions {path.name} lists under chain.contracts "
                f"{sorted(spec.chain.contracts)}"
            )
        releases[release.version] = release
        files[release.version] = file.resolve()
    for version, release in releases.items():
        if release.previous is not None and release.previous not in releases:
            raise SpecError(
                f"{files[version]}: previous: {release.previous!r} is not one of the "
                f"releases {path.name} lists {sorted(releases)}"
            )
        chain, at = [version], release.previous
        while at is not None:
            if at in chain:
                loop = " -> ".join([*chain[chain.index(at) :], at])
                raise SpecError(
                    f"{files[version]}: previous: {loop} forms a loop; expected a chain of "
                    "previous releases ending at one with `previous: null`"
                )
            chain.append(at)
            at = releases[at].previous
    return releases


def _check_release_parts(file: Path, release: ReleaseSpec, spec: StackSpec) -> None:
    for name, svc_release in release.services.items():
        for n, patch in enumerate(svc_release.patches):
            if not (file.parent / patch).is_file():
                raise SpecError(
                    f"{file}: services.{name}.patches.{n}: expected an existing patch file "
                    f"(relative to the release file), {patch!r} not found"
                )
    migration = release.migration
    if migration is not None and spec.services.get(migration.service, None) is None:
        raise SpecError(
            f"{file}: migration.service: unknown service {migration.service!r}, expected one "
            f"of {sorted(n for n, s in spec.services.items() if s.kind == 'app')}"
        )
    if migration is not None and spec.services[migration.service].kind != "app":
        raise SpecError(
            f"{file}: migration.service: {migration.service!r} is not an app service (a "
            "migration runs in an app's environment)"
        )
    if release.defect is not None:
        strays = set(release.defect.services) - set(spec.services)
        if strays:
            raise SpecError(
                f"{file}: defect.services: unknown service(s) {sorted(strays)}, expected "
                f"names from {sorted(spec.services)}"
            )


class LoadedStack:
    """A stack file with its releases loaded and its relative paths resolved; `environment`
    says which of its environments this is (see `in_environment`)."""

    def __init__(self, path: Path) -> None:
        self.path = path.resolve()
        self.root = self.path.parent
        self.spec = load_model(StackSpec, self.path)
        self.release_files: dict[str, Path] = {}
        self.releases: dict[str, ReleaseSpec] = _load_releases(
            self.path, self.spec, self.release_files
        )
        self.environment = PRODUCTION
        self.ports: PortRange | None = None
        self._check_files()
        for name, profile in self.spec.profiles.items():
            if profile.release is not None and profile.release not in self.releases:
                raise SpecError(
                    f"{self.path}: profiles.{name}.release: {profile.release!r} is not one of "
                    f"the releases {sorted(self.releases)}"
                )

    def in_environment(self, name: str) -> LoadedStack:
        """This stack file as the named environment: production is the file itself, any
        other name a profile of it (its seed, ports and release replace the file's)."""
        if name == PRODUCTION:
            return self
        profile = self.spec.profiles.get(name)
        if profile is None:
            known = sorted([PRODUCTION, *self.spec.profiles])
            raise SpecError(
                f"{self.path}: profiles: no environment {name!r}; expected one of {known}"
            )
        seed = self.spec.seed.model_copy(
            update={
                "users": profile.seed_users or self.spec.seed.users,
                "seed": self.spec.seed.seed if profile.seed is None else profile.seed,
            }
        )
        other = copy.copy(self)
        other.spec = self.spec.model_copy(update={"seed": seed})
        other.environment = name
        other.ports = profile.ports
        return other

    @property
    def profile(self) -> ProfileSpec | None:
        return self.spec.profiles.get(self.environment)

    def environment_release(self) -> str:
        """The release this environment runs: its profile's, or the first the file lists."""
        chosen = self.profile.release if self.profile else None
        return chosen or next(iter(self.releases))

    def _check_files(self) -> None:
        wanted = {
            "runbook": self.spec.runbook,
            "chain.contract_artifact": self.spec.chain.contract_artifact,
        }
        for name, svc in self.spec.services.items():
            if svc.config_template:
                wanted[f"services.{name}.config_template"] = svc.config_template
            if svc.static_root:
                wanted[f"services.{name}.static_root"] = svc.static_root
        for field, rel in wanted.items():
            if not (self.root / rel).exists():
                raise SpecError(
                    f"{self.path}: {field}: expected an existing path, {rel!r} not found"
                )

    def resolve(self, rel: str) -> Path:
        return self.root / rel

    def contract_artifact(self, version: str) -> Path:
        """The compiled artifact of a contract version (`chain.contracts`, else the stack's
        one `chain.contract_artifact`)."""
        chain = self.spec.chain
        return self.resolve(chain.contracts.get(version, chain.contract_artifact))

    def on_chain(self, chain_id: int) -> LoadedStack:
        """This stack file with its chain running as `chain_id`: the same stack standing in
        for another network (Polygon mainnet is 137, Amoy 80002)."""
        moved = copy.copy(self)
        chain = self.spec.chain.model_copy(update={"chain_id": chain_id})
        moved.spec = self.spec.model_copy(update={"chain": chain})
        return moved

    def release(self, version: str) -> ReleaseSpec:
        try:
            return self.releases[version]
        except KeyError:
            raise SpecError(
                f"{self.path}: no release {version!r}; expected one of {sorted(self.releases)}"
            ) from None

    def budget(self, severity: Severity) -> DecisionRow:
        for row in self.spec.decision_matrix:
            if row.severity == severity:
                return row
        raise SpecError(f"{self.path}: decision_matrix: no row for severity {severity!r}")


def load_stack(path: Path | str) -> LoadedStack:
    return LoadedStack(Path(path))
