"""Which images the reference stack needs, and what each is built from (`ImageSpec`).

Read from the stack file: an app and a frontend image per release it lists (from that release's
build, so the defect a release is known for is in its image), and one image each for the
stores and the chain, with the host's binaries they carry (Node and mongosh for MongoDB, the
anvil binary). Building them is another module's job; this one only says what they are.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from rollback_drill.files.spec import LoadedStack, load_stack
from rollback_drill.process.errors import ImageBuildError, SpecError
from rollback_drill.stack import releases
from rollback_drill.stack.images.filehash import FileHasher
from rollback_drill.stack.images.layout import Layout
from rollback_drill.stack.images.releasebuilds import release_build

#: Files of npm packages that nothing reads at run time (source maps, documentation).
NPM_EXCLUDE = (".map", ".md", ".markdown")


@dataclass(frozen=True)
class ContextEntry:
    """A file or directory copied into the build context at ``dest`` (relative).

    With ``render_release``, ``.html`` files get their ``${release}`` placeholder filled in
    with the image's release (as the local backend does when it serves the frontend).
    """

    src: Path
    dest: str
    render_release: bool = False
    exclude_suffixes: tuple[str, ...] = ()


@dataclass(frozen=True)
class ImageSpec:
    """One derived image: what it is built from and how."""

    tag: str
    title: str
    dockerfile: Path
    entries: tuple[ContextEntry, ...]
    target: str | None = None
    release: str | None = None
    service: str | None = None
    env: tuple[tuple[str, str], ...] = ()
    uses_ca: bool = True
    build: Path | None = None  # the release build its code comes from (releases.build)


def _load_stack(layout: Layout) -> LoadedStack:
    try:
        return load_stack(layout.stack_file)
    except SpecError as exc:
        raise ImageBuildError(str(exc)) from None


def _service_env(loaded: LoadedStack, release: str, service: str) -> tuple[tuple[str, str], ...]:
    entry = loaded.release(release).services.get(service)
    return tuple(sorted(entry.env.items())) if entry is not None else ()


def _anvil_version(package: Path) -> str:
    data = json.loads((package / "package.json").read_text(encoding="utf-8"))
    return str(data["version"])


def npm_closure(project: Path, package: str) -> list[str]:
    """``package`` and its runtime dependencies as installed paths under ``project``.

    Resolved from ``package-lock.json`` as Node resolves them (a dependency is looked up in
    ``node_modules`` from the dependent's own directory upwards). Optional dependencies that
    are not installed (other platforms) are left out. Nested paths are covered by their
    ancestors, so only the outermost ones are returned, sorted.
    """
    lock = json.loads((project / "package-lock.json").read_text(encoding="utf-8"))
    packages: dict[str, dict[str, object]] = lock.get("packages") or {}

    def resolve(dependent: str, name: str) -> str | None:
        here = dependent
        while True:
            candidate = f"{here}/node_modules/{name}" if here else f"node_modules/{name}"
            if candidate in packages:
                return candidate
            if not here:
                return None
            cut = here.rfind("/node_modules/")
            here = here[:cut] if cut >= 0 else ""

    start = f"node_modules/{package}"
    if start not in packages or not (project / start).is_dir():
        raise ImageBuildError(f"{package} is not installed in {project} (run scripts/setup.sh)")
    seen: set[str] = set()
    todo = [start]
    while todo:
        path = todo.pop()
        if path in seen or not (project / path).is_dir():
            continue
        seen.add(path)
        entry = packages[path]
        for field_name in ("dependencies", "optionalDependencies", "peerDependencies"):
            deps = entry.get(field_name) or {}
            if isinstance(deps, dict):
                todo += [r for name in deps if (r := resolve(path, str(name))) is not None]
    return sorted(p for p in seen if not any(p.startswith(f"{o}/") for o in seen))


def _node_binary() -> Path:
    found = shutil.which("node")
    if found is None:
        raise ImageBuildError("the mongodb image needs the host's Node 20 (`node` is not on PATH)")
    return Path(found).resolve()


def image_specs(layout: Layout, hasher: FileHasher | None = None) -> list[ImageSpec]:
    """Every derived image, in build order (images sharing layers next to each other).

    The app and frontend images of every release the stack file lists are made from that
    release's build (rollback_drill.stack.releases): the defect a release is known for is in its
    image, and a changed patch changes the image's inputs. A release whose image the stack
    file names itself (`services.<name>.images`) is not built here.
    """
    d = layout.docker_dir
    hasher = hasher or FileHasher()
    loaded = _load_stack(layout)
    services = loaded.spec.services
    specs: list[ImageSpec] = []

    def built_releases(service: str) -> list[tuple[str, Path]]:
        wanted = [r for r in loaded.releases if r not in services[service].images]
        return [(r, release_build(loaded, service, r, layout, hasher)) for r in wanted]

    for service in (n for n, s in services.items() if s.kind == "app"):
        pythonpath = services[service].pythonpath
        if pythonpath is None:
            raise ImageBuildError(f"{loaded.path}: services.{service}: no `pythonpath` to build")
        for release, build in built_releases(service):
            specs.append(
                ImageSpec(
                    tag=f"rollback-drill/safepsy-{service}:{release}",
                    title=f"safepsy-{service}",
                    dockerfile=d / "python-app.Dockerfile",
                    entries=(
                        ContextEntry(build / releases.in_build(loaded, service, pythonpath), "app"),
                    ),
                    target=service,
                    release=release,
                    service=service,
                    env=_service_env(loaded, release, service),
                    build=build,
                )
            )
    specs.append(
        ImageSpec(
            tag="rollback-drill/mongodb:secantus-0.7",
            title="mongodb-secantusdb",
            dockerfile=d / "mongodb.Dockerfile",
            # mongosh, so that `docker exec <mongodb> mongosh` works as in the runbook: the
            # host's Node binary and mongosh's packages from the project's node_modules.
            entries=(
                ContextEntry(_node_binary(), "node"),
                *(
                    ContextEntry(layout.root / p, f"mongosh/{p}", exclude_suffixes=NPM_EXCLUDE)
                    for p in npm_closure(layout.root, "mongosh")
                ),
            ),
            target="mongodb",
            service="mongodb",
        )
    )
    for service in (n for n, s in services.items() if s.kind == "nginx"):
        static_root = services[service].static_root
        assert static_root is not None  # the spec requires it of an nginx service
        for release, build in built_releases(service):
            specs.append(
                ImageSpec(
                    tag=f"rollback-drill/safepsy-{service}:{release}",
                    title=f"safepsy-{service}",
                    dockerfile=d / "nginx.Dockerfile",
                    entries=(
                        ContextEntry(
                            build / releases.in_build(loaded, service, static_root),
                            "frontend",
                            render_release=True,
                        ),
                        ContextEntry(d / "nginx-default.conf", "nginx-default.conf"),
                    ),
                    release=release,
                    service=service,
                    env=_service_env(loaded, release, service),
                    build=build,
                )
            )
    specs.append(
        ImageSpec(
            tag="rollback-drill/redis:7.0",
            title="redis",
            dockerfile=d / "redis.Dockerfile",
            entries=(),
            service="redis",
        )
    )
    specs.append(
        ImageSpec(
            tag=f"rollback-drill/anvil:{_anvil_version(layout.anvil_package)}",
            title="anvil",
            dockerfile=d / "anvil.Dockerfile",
            entries=(ContextEntry(layout.anvil_package / "bin" / "anvil", "anvil"),),
            service="chain",
            uses_ca=False,
        )
    )
    return specs
