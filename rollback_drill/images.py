"""Build and cache the Docker images of the reference stack, without any registry.

Nothing can be pulled here, so every image is made locally:

* the base ``rollback-drill/debian:bookworm`` is a Debian rootfs made by ``mmdebstrap
  --variant=minbase`` from the host's own apt sources, written to a file and ``docker import``-ed;
* every other image is built by ``DOCKER_BUILDKIT=1 /usr/bin/docker build`` ``FROM`` that base,
  from a Dockerfile in ``fixtures/safepsy/docker/`` and a build context this module assembles
  (the host's local CA certificates, the anvil binary, the host's Node binary with mongosh's
  npm packages, and per release listed in the stack file: the app or the frontend page from
  that release's build - the base sources with its patches applied, rollback_drill.releases -
  with the release filled in, and the release env).

Caching, in two levels:

* each image carries the label ``rollback-drill.inputs``: a hash of everything it was made from
  (rendered Dockerfile, every context file, the CA certificates, the base image id, build args).
  An image whose label matches the inputs of this run is kept ("cached"). File hashes are
  remembered by (size, mtime, inode) in ``.cache/images/file-hashes.json``, so a run with
  nothing to do takes about a second;
* the whole set is saved as one zstd-compressed ``docker save`` bundle under ``.cache/images/``
  with an index of the input hashes it holds. A machine that has the cache directory but not the
  images loads the bundle ("loaded") instead of building; only images whose inputs changed since
  are then built.

``scripts/build-images.sh`` runs :func:`main`; it prints one line per image (built / cached /
loaded, seconds) and the total.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import functools
import hashlib
import json
import os
import shutil
import string
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from rollback_drill import releases
from rollback_drill.spec import LoadedStack, SpecError, load_stack

#: Debian's docker client: the other client on PATH lacks buildx, which BuildKit builds need.
DOCKER = "/usr/bin/docker"
BASE_TAG = "rollback-drill/debian:bookworm"
SUITE = "bookworm"
VARIANT = "minbase"
LABEL_INPUTS = "rollback-drill.inputs"
LABEL_TITLE = "org.opencontainers.image.title"
LABEL_VERSION = "org.opencontainers.image.version"
LABEL_RELEASE = "rollback-drill.release"
LABEL_SERVICE = "rollback-drill.service"
#: Bumped when the way images are assembled changes, so every cached image is rebuilt.
SCHEMA = "rollback-drill-images/1"
#: Lines of a Dockerfile that are replaced by the release's service env as ``ENV`` lines.
RELEASE_ENV_MARKER = "# @release-env"
#: Slimmer rootfs: no docs, man pages or translations (kept out by dpkg in derived images too,
#: since mmdebstrap writes these options into the rootfs) and no apt translation files.
MMDEBSTRAP_OPTIONS = (
    "--dpkgopt=path-exclude=/usr/share/doc/*",
    "--dpkgopt=path-include=/usr/share/doc/*/copyright",
    "--dpkgopt=path-exclude=/usr/share/man/*",
    "--dpkgopt=path-exclude=/usr/share/info/*",
    "--dpkgopt=path-exclude=/usr/share/locale/*",
    "--dpkgopt=path-include=/usr/share/locale/locale.alias",
    '--aptopt=Acquire::Languages "none"',
)
#: Files of npm packages that nothing reads at run time (source maps, documentation).
NPM_EXCLUDE = (".map", ".md", ".markdown")
DEFAULT_CA_DIR = Path("/usr/local/share/ca-certificates")
DEFAULT_SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
#: Files never copied into a build context nor hashed.
IGNORED_NAMES = frozenset({"__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache"})
IGNORED_SUFFIXES = (".pyc", ".pyo")

Action = Literal["built", "cached", "loaded"]


class ImageBuildError(RuntimeError):
    """A build, import, save or load step failed; the message says which and why."""


@dataclass(frozen=True)
class Layout:
    """Where the inputs and the cache are. Defaults are the repository's own paths."""

    root: Path
    fixtures: Path
    docker_dir: Path
    anvil_package: Path
    cache_dir: Path
    ca_dir: Path = DEFAULT_CA_DIR
    sources: Path = DEFAULT_SOURCES
    stack: Path | None = None  # the stack file; None: fixtures/stack.yaml

    @property
    def stack_file(self) -> Path:
        return self.stack or self.fixtures / "stack.yaml"

    @property
    def builds_dir(self) -> Path:
        """Release builds the images are made from, named by their contents (so a cache
        directory shared between checkouts never hands one checkout another's build)."""
        return self.cache_dir / "release-builds"

    @classmethod
    def default(cls, root: Path | None = None) -> Layout:
        root = (root or Path(__file__).resolve().parent.parent).resolve()
        fixtures = root / "fixtures" / "safepsy"
        return cls(
            root=root,
            fixtures=fixtures,
            docker_dir=fixtures / "docker",
            anvil_package=root / "node_modules" / "@foundry-rs" / "anvil-linux-amd64",
            cache_dir=root / ".cache" / "images",
        )


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


@dataclass(frozen=True)
class Outcome:
    """What happened to one image in a run."""

    tag: str
    action: Action
    seconds: float
    size_bytes: int
    image_id: str
    note: str = ""


@dataclass
class BuildReport:
    """Every image's outcome in build order (the base first) and the run's total time."""

    outcomes: list[Outcome] = field(default_factory=list)
    total_seconds: float = 0.0
    bundle: Path | None = None
    bundle_note: str = ""

    def by_tag(self) -> dict[str, Outcome]:
        return {o.tag: o for o in self.outcomes}


# --------------------------------------------------------------------------- docker helpers


def _docker_env() -> dict[str, str]:
    env = dict(os.environ)
    env["DOCKER_BUILDKIT"] = "1"
    return env


def _run(args: Sequence[str], *, what: str, log: Path | None = None) -> str:
    """Run a command; return stdout. On failure raise with the tail of its output."""
    result = subprocess.run(
        list(args), capture_output=True, text=True, env=_docker_env(), check=False
    )
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(result.stdout + result.stderr, encoding="utf-8")
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-25:])
        where = f" (full log: {log})" if log is not None else ""
        raise ImageBuildError(f"{what} failed with exit status {result.returncode}{where}:\n{tail}")
    return result.stdout


def docker_available() -> bool:
    """True when a Docker daemon answers ``docker info``."""
    if not Path(DOCKER).exists():
        return False
    try:
        result = subprocess.run(
            [DOCKER, "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0 and bool(result.stdout.strip())


@dataclass(frozen=True)
class ImageInfo:
    image_id: str
    size_bytes: int
    labels: dict[str, str]


def inspect_images(refs: Sequence[str]) -> dict[str, ImageInfo]:
    """The local images among ``refs`` (tags or ids), in one ``docker image inspect`` call."""
    if not refs:
        return {}
    result = subprocess.run(
        [DOCKER, "image", "inspect", "--format", "{{json .}}", *refs],
        capture_output=True,
        text=True,
        check=False,
    )
    # With some refs missing, docker still prints the others (one JSON line each, in order of
    # the refs found) and exits 1; match them back by tag or id.
    found: dict[str, ImageInfo] = {}
    for line in result.stdout.splitlines():
        if not line.strip():
            continue
        data = json.loads(line)
        labels = (data.get("Config") or {}).get("Labels") or {}
        info = ImageInfo(
            image_id=str(data["Id"]),
            size_bytes=int(data.get("Size") or 0),
            labels={str(k): str(v) for k, v in labels.items()},
        )
        names = {info.image_id, *(str(t) for t in data.get("RepoTags") or [])}
        for ref in refs:
            if ref in names:
                found[ref] = info
    return found


def inspect_image(ref: str) -> ImageInfo | None:
    """The local image ``ref`` (tag or id), or None when there is none."""
    return inspect_images([ref]).get(ref)


def current_inputs(tag: str) -> str | None:
    """The ``rollback-drill.inputs`` label of the local image ``tag``, if it exists."""
    info = inspect_image(tag)
    return None if info is None else info.labels.get(LABEL_INPUTS)


# --------------------------------------------------------------------------- specs


def _load_stack(layout: Layout) -> LoadedStack:
    try:
        return load_stack(layout.stack_file)
    except SpecError as exc:
        raise ImageBuildError(str(exc)) from None


def _service_env(loaded: LoadedStack, release: str, service: str) -> tuple[tuple[str, str], ...]:
    entry = loaded.release(release).services.get(service)
    return tuple(sorted(entry.env.items())) if entry is not None else ()


def _tree_digest(root: Path, hasher: FileHasher) -> str:
    """Names and contents of every file under ``root`` (caches skipped)."""
    h = hashlib.sha256()
    for src, rel in _walk(root, "."):
        h.update(rel.encode() + b"\0" + hasher.digest(src))
    return h.hexdigest()


def release_build(
    loaded: LoadedStack, service: str, release: str, layout: Layout, hasher: FileHasher
) -> Path:
    """The release's build of a service (base sources + its patches, `patch -p1`), in a
    folder named by what it is made of: the base sources' contents and the patches' bytes.
    A changed source or patch is a new folder, so the image's inputs change with it; an
    unchanged one is reused (built once into a temporary folder, then renamed into place)."""
    h = hashlib.sha256(f"{SCHEMA}\0{service}\0{release}".encode())
    for rel in releases.sources(loaded, service):
        h.update(rel.encode() + b"\0" + _tree_digest(loaded.resolve(rel), hasher).encode())
    for patch in releases.patches(loaded, service, release):
        h.update(hasher.digest(patch))
    dest = layout.builds_dir / f"{service}-{release}-{h.hexdigest()[:16]}"
    if (dest / releases.STAMP).is_file():
        return dest
    layout.builds_dir.mkdir(parents=True, exist_ok=True)
    part = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=layout.builds_dir))
    try:
        releases.build(loaded, service, release, part)
    except releases.BuildError as exc:
        raise ImageBuildError(str(exc)) from None
    finally:
        if not (part / releases.STAMP).is_file():
            shutil.rmtree(part, ignore_errors=True)
    try:
        part.rename(dest)
    except OSError:  # another run made the same build meanwhile: the same content
        shutil.rmtree(part, ignore_errors=True)
    return dest


def prune_builds(layout: Layout, keep: set[Path]) -> None:
    """Remove release builds no current image is made from (under the build lock), and
    unfinished ones older than ten minutes (a build being made right now is left alone)."""
    if not layout.builds_dir.is_dir():
        return
    for child in layout.builds_dir.iterdir():
        unfinished = child.name.startswith(".")
        if unfinished and time.time() - child.stat().st_mtime < 600:
            continue
        if child not in keep:
            shutil.rmtree(child, ignore_errors=True)


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
    release's build (rollback_drill.releases): the defect a release is known for is in its
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


# --------------------------------------------------------------------------- contexts and hashes


def _walk(src: Path, dest: str) -> Iterator[tuple[Path, str]]:
    """(file, relative destination) pairs under ``src``, sorted, skipping caches.

    A symlink to a file counts as that file; symlinks to directories and dangling ones
    (``.bin`` folders of npm packages, for instance) are skipped.
    """
    if not src.exists():
        raise ImageBuildError(f"build input missing: {src}")
    if src.is_file():
        yield src, dest
        return
    for child in sorted(src.iterdir(), key=lambda p: p.name):
        if child.name in IGNORED_NAMES or child.name.endswith(IGNORED_SUFFIXES):
            continue
        if child.is_symlink() and (child.is_dir() or not child.exists()):
            continue
        yield from _walk(child, f"{dest}/{child.name}")


def _quote_env(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return f'"{escaped}"'


def render_dockerfile(spec: ImageSpec) -> str:
    """The Dockerfile with each ``# @release-env`` line replaced by the release's env."""
    if spec.env:
        env_lines = "\n".join(f"ENV {k}={_quote_env(v)}" for k, v in spec.env)
    else:
        env_lines = "# (this release sets no env for this service)"
    text = spec.dockerfile.read_text(encoding="utf-8")
    out = [env_lines if line.strip() == RELEASE_ENV_MARKER else line for line in text.splitlines()]
    return "\n".join(out) + "\n"


def render_release_env(spec: ImageSpec) -> str:
    lines = [f"# {spec.tag}: env of {spec.service} in release {spec.release}"]
    if spec.release is not None:
        lines.append(f"RELEASE={spec.release}")
    lines += [f"{k}={v}" for k, v in spec.env]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Context:
    """A build context as a list of files plus generated files, hashable without copying."""

    files: tuple[tuple[Path, str], ...]
    generated: tuple[tuple[str, bytes], ...]

    def digest(self, hasher: FileHasher, *extra: str) -> str:
        h = hashlib.sha256()
        for item in (SCHEMA, *extra):
            h.update(item.encode() + b"\0")
        entries = [(rel, hashlib.sha256(data).digest(), False) for rel, data in self.generated]
        entries += [(rel, hasher.digest(src), os.access(src, os.X_OK)) for src, rel in self.files]
        for rel, digest, executable in sorted(entries):
            h.update(rel.encode() + b"\0" + (b"x" if executable else b"-") + b"\0" + digest)
        return h.hexdigest()

    def materialize(self, directory: Path) -> None:
        for src, rel in self.files:
            target = directory / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            try:  # a hard link is instant (node_modules trees hold thousands of files)
                os.link(src, target)
            except OSError:
                shutil.copy2(src, target)
        for rel, data in self.generated:
            target = directory / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)


class FileHasher:
    """SHA-256 of files, remembered by (size, mtime, inode) in a JSON file between runs.

    Content hashes keep the inputs of an image equal across machines (so a bundle made on
    one machine is current on another); the memo keeps a run with nothing to do fast even
    with the node binary and mongosh's 15k files among the inputs.
    """

    def __init__(self, memo: Path | None = None) -> None:
        self.memo = memo
        self.known: dict[str, list[object]] = {}
        self.used: set[str] = set()
        self.dirty = False
        if memo is not None:
            with contextlib.suppress(OSError, ValueError):
                data = json.loads(memo.read_text(encoding="utf-8"))
                if isinstance(data, dict):
                    self.known = data

    def digest(self, path: Path) -> bytes:
        st = path.stat()
        key = os.path.abspath(path)
        stamp: list[object] = [st.st_size, st.st_mtime_ns, st.st_ino]
        entry = self.known.get(key)
        self.used.add(key)
        if entry is not None and entry[:3] == stamp:
            return bytes.fromhex(str(entry[3]))
        h = hashlib.sha256()
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        self.known[key] = [*stamp, h.hexdigest()]
        self.dirty = True
        return h.digest()

    def save(self) -> None:
        """Write the memo: the files hashed in this run only, so it never outgrows the inputs."""
        if self.memo is None or not (self.dirty or self.used != set(self.known)):
            return
        part = self.memo.with_name(self.memo.name + ".part")
        kept = {k: v for k, v in self.known.items() if k in self.used}
        part.write_text(json.dumps(kept), encoding="utf-8")
        part.replace(self.memo)
        self.dirty = False


def _ca_files(ca_dir: Path) -> list[tuple[Path, str]]:
    """The host's local CA certificates (what update-ca-certificates reads), if any."""
    if not ca_dir.is_dir():
        return []
    return list(_walk(ca_dir, "ca-certificates"))


def build_context(spec: ImageSpec, layout: Layout) -> Context:
    files: list[tuple[Path, str]] = []
    generated: list[tuple[str, bytes]] = []
    for entry in spec.entries:
        for src, rel in _walk(entry.src, entry.dest):
            if entry.exclude_suffixes and src.name.endswith(entry.exclude_suffixes):
                continue
            if entry.render_release and src.suffix == ".html" and spec.release is not None:
                page = string.Template(src.read_text(encoding="utf-8"))
                generated.append((rel, page.safe_substitute(release=spec.release).encode()))
            else:
                files.append((src, rel))
    if spec.uses_ca:
        files.extend(_ca_files(layout.ca_dir))
    generated.append(("Dockerfile", render_dockerfile(spec).encode()))
    if spec.service is not None and spec.release is not None:
        generated.append(("release.env", render_release_env(spec).encode()))
    if spec.uses_ca:
        # An empty directory still needs to exist for the Dockerfile's COPY.
        generated.append(("ca-certificates/.keep", b""))
    return Context(files=tuple(files), generated=tuple(generated))


def spec_inputs(
    spec: ImageSpec, layout: Layout, base_id: str, hasher: FileHasher | None = None
) -> str:
    """The input hash of a derived image: its context, build settings and the base image id."""
    ctx = build_context(spec, layout)
    settings = json.dumps(
        {
            "tag": spec.tag,
            "title": spec.title,
            "target": spec.target,
            "release": spec.release,
            "service": spec.service,
        },
        sort_keys=True,
    )
    return ctx.digest(hasher or FileHasher(), settings, f"base={base_id}")


def base_inputs(layout: Layout) -> str:
    """The input hash of the base image: suite, variant and the host's apt sources."""
    h = hashlib.sha256()
    for item in (SCHEMA, "base", SUITE, VARIANT, BASE_TAG, *MMDEBSTRAP_OPTIONS):
        h.update(item.encode() + b"\0")
    h.update(layout.sources.read_bytes())
    return h.hexdigest()


# --------------------------------------------------------------------------- building


def build_base(layout: Layout, inputs: str) -> str:
    """mmdebstrap a minbase rootfs into a file, then ``docker import`` it (never a pipe).

    Returns a note with the time of each step.
    """
    work = layout.cache_dir / "work"
    work.mkdir(parents=True, exist_ok=True)
    rootfs = work / "debian-bookworm-rootfs.tar"
    rootfs.unlink(missing_ok=True)
    try:
        t0 = time.monotonic()
        _run(
            [
                "mmdebstrap",
                f"--variant={VARIANT}",
                *MMDEBSTRAP_OPTIONS,
                SUITE,
                str(rootfs),
                str(layout.sources),
            ],
            what="mmdebstrap (base rootfs)",
            log=layout.cache_dir / "logs" / "base.log",
        )
        changes = [
            f"LABEL {LABEL_TITLE}=debian-{SUITE}-{VARIANT}",
            f"LABEL {LABEL_INPUTS}={inputs}",
            'CMD ["/bin/bash"]',
        ]
        args = [DOCKER, "import"]
        for change in changes:
            args += ["--change", change]
        t1 = time.monotonic()
        _run([*args, str(rootfs), BASE_TAG], what="docker import (base)")
        t2 = time.monotonic()
    finally:
        rootfs.unlink(missing_ok=True)
    return f"(mmdebstrap {t1 - t0:.1f} s, docker import {t2 - t1:.1f} s)"


def build_derived(
    spec: ImageSpec, layout: Layout, inputs: str, cache_from: Sequence[str] = ()
) -> str:
    """Assemble the context in a temporary directory and build it with BuildKit.

    Images carry BuildKit's inline cache metadata, and ``cache_from`` (local tags) lets a
    machine that loaded the bundle reuse their layers, as if it had built them itself
    (tags in ``cache_from`` that do not exist are skipped).
    """
    slug = spec.tag.replace("/", "_").replace(":", "_")
    with tempfile.TemporaryDirectory(prefix=f"ctx-{slug}-", dir=layout.cache_dir) as tmp:
        ctx_dir = Path(tmp)
        build_context(spec, layout).materialize(ctx_dir)
        args = [DOCKER, "build", "--progress=plain", "-f", str(ctx_dir / "Dockerfile")]
        args += ["-t", spec.tag, "--build-arg", "BUILDKIT_INLINE_CACHE=1"]
        for ref in cache_from:
            if _image_id(ref) is not None:
                args += ["--cache-from", ref]
        labels = {LABEL_TITLE: spec.title, LABEL_INPUTS: inputs}
        if spec.release is not None:
            labels[LABEL_VERSION] = spec.release
            labels[LABEL_RELEASE] = spec.release
            args += ["--build-arg", f"RELEASE={spec.release}"]
        if spec.service is not None:
            labels[LABEL_SERVICE] = spec.service
        for key, value in labels.items():
            args += ["--label", f"{key}={value}"]
        if spec.target is not None:
            args += ["--target", spec.target]
        args.append(str(ctx_dir))
        _run(args, what=f"docker build {spec.tag}", log=layout.cache_dir / "logs" / f"{slug}.log")
    return ""


# --------------------------------------------------------------------------- bundle cache


BUNDLE_PREFIX = "images-"
BUNDLE_SUFFIX = ".tar.zst"


def _bundles(cache_dir: Path) -> list[tuple[Path, dict[str, str]]]:
    """Complete bundles in the cache (bundle, {tag: inputs}), newest first."""
    found: list[tuple[float, Path, dict[str, str]]] = []
    for path in cache_dir.glob(f"{BUNDLE_PREFIX}*{BUNDLE_SUFFIX}"):
        index_path = path.with_name(path.name[: -len(BUNDLE_SUFFIX)] + ".json")
        try:
            index = json.loads(index_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        images = index.get("images") if isinstance(index, dict) else None
        if isinstance(images, dict):
            found.append((path.stat().st_mtime, path, {str(k): str(v) for k, v in images.items()}))
    found.sort(key=lambda item: item[0], reverse=True)
    return [(path, images) for _, path, images in found]


def _pipe(first: list[str], second: list[str], *, what: str) -> str:
    """``first | second``; fail when either side fails. Returns second's stdout."""
    with subprocess.Popen(first, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as p1:
        assert p1.stdout is not None
        p2 = subprocess.run(second, stdin=p1.stdout, capture_output=True, check=False)
        p1.stdout.close()
        err1 = p1.stderr.read() if p1.stderr is not None else b""
        p1.wait()
    if p1.returncode != 0 or p2.returncode != 0:
        detail = (err1 + p2.stderr).decode(errors="replace").strip()
        raise ImageBuildError(
            f"{what} failed ({first[0]} exit {p1.returncode}, {second[0]} exit "
            f"{p2.returncode}): {detail}"
        )
    return p2.stdout.decode(errors="replace")


def load_bundle(path: Path) -> None:
    """``zstd -dc BUNDLE | docker load``."""
    _pipe(["zstd", "-dc", "-q", str(path)], [DOCKER, "load", "-q"], what=f"loading {path.name}")


def save_bundle(cache_dir: Path, images: dict[str, str]) -> Path:
    """``docker save TAGS | zstd`` into a new bundle with its index; drop older bundles."""
    key = hashlib.sha256(json.dumps(images, sort_keys=True).encode()).hexdigest()[:16]
    path = cache_dir / f"{BUNDLE_PREFIX}{key}{BUNDLE_SUFFIX}"
    index_path = cache_dir / f"{BUNDLE_PREFIX}{key}.json"
    part = path.with_name(path.name + ".part")
    _pipe(
        [DOCKER, "save", *sorted(images)],
        ["zstd", "-q", "-T0", "-3", "-f", "-o", str(part)],
        what="saving the image bundle",
    )
    index_path.write_text(
        json.dumps({"images": images, "created": time.time()}, indent=2, sort_keys=True) + "\n",
        encoding="utf-8",
    )
    part.replace(path)
    for old, _ in _bundles(cache_dir):
        if old != path:
            old.unlink(missing_ok=True)
            old.with_name(old.name[: -len(BUNDLE_SUFFIX)] + ".json").unlink(missing_ok=True)
    return path


# --------------------------------------------------------------------------- the run


@contextlib.contextmanager
def _lock(cache_dir: Path) -> Iterator[None]:
    """One build at a time per cache directory (tests and the CLI may overlap)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    with (cache_dir / ".lock").open("w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class _Runner:
    """Brings images up to date one at a time and records what happened to each."""

    def __init__(
        self,
        layout: Layout,
        tags: Sequence[str],
        *,
        force: bool,
        use_bundle: bool,
        emit: Callable[[str], None],
    ) -> None:
        self.layout = layout
        self.force = force
        self.use_bundle = use_bundle
        self.emit = emit
        self.report = BuildReport()
        self.loaded_bundles: set[Path] = set()
        self.replaced_any = False
        # Image ids at the start of the run: an image that is current now but had another id
        # then, and that this run did not build, came from a bundle.
        self.initial_ids = {tag: info.image_id for tag, info in inspect_images(tags).items()}

    def _outcome(
        self,
        tag: str,
        action: Action,
        seconds: float,
        note: str = "",
        info: ImageInfo | None = None,
    ) -> Outcome:
        info = info or inspect_image(tag)
        if info is None:
            raise ImageBuildError(f"{tag}: missing right after it was {action}")
        outcome = Outcome(tag, action, seconds, info.size_bytes, info.image_id, note)
        self.report.outcomes.append(outcome)
        extra = f"  {note}" if note else ""
        self.emit(f"{action:<7} {tag:<44} {seconds:6.1f} s {info.size_bytes / 1e6:7.0f} MB{extra}")
        return outcome

    def _try_bundle(self, tag: str, inputs: str, expected: dict[str, str]) -> bool:
        """Load the newest bundle that holds ``tag`` at ``inputs``; True when it is now current.

        Images that are already current in Docker are re-tagged to their ids after the load,
        so a bundle never replaces a current image with another one.
        """
        if self.force or not self.use_bundle:
            return False
        for path, images in _bundles(self.layout.cache_dir):
            if images.get(tag) != inputs or path in self.loaded_bundles:
                continue
            keep = {
                t: info.image_id
                for t in expected
                if t != tag
                and (info := inspect_image(t)) is not None
                and info.labels.get(LABEL_INPUTS) == expected[t]
            }
            start = time.monotonic()
            load_bundle(path)
            for kept_tag, image_id in keep.items():
                if _image_id(kept_tag) != image_id:
                    _run([DOCKER, "tag", image_id, kept_tag], what=f"re-tagging {kept_tag}")
            self.loaded_bundles.add(path)
            self.replaced_any = True
            seconds = time.monotonic() - start
            size_mb = path.stat().st_size / 1e6
            self.report.bundle_note = f"loaded {path.name} ({size_mb:.0f} MB) in {seconds:.1f} s"
            self.emit(f"bundle  {path.name:<44} {seconds:6.1f} s {size_mb:7.0f} MB  (zstd -dc)")
            return current_inputs(tag) == inputs
        return False

    def ensure(
        self, tag: str, inputs: str, build: Callable[[], str], expected: dict[str, str]
    ) -> Outcome:
        """Keep, load or build ``tag`` so that its inputs label is ``inputs``."""
        start = time.monotonic()
        before = inspect_image(tag)
        if not self.force and before is not None and before.labels.get(LABEL_INPUTS) == inputs:
            if before.image_id == self.initial_ids.get(tag):
                return self._outcome(tag, "cached", time.monotonic() - start, info=before)
            return self._outcome(
                tag, "loaded", time.monotonic() - start, "(from the bundle)", info=before
            )
        if self._try_bundle(tag, inputs, expected):
            return self._outcome(tag, "loaded", time.monotonic() - start, "(from the bundle)")
        if before is not None:
            self.replaced_any = True
        note = build()
        if current_inputs(tag) != inputs:
            raise ImageBuildError(f"{tag}: built, but its {LABEL_INPUTS} label does not match")
        return self._outcome(tag, "built", time.monotonic() - start, note)


def _image_id(tag: str) -> str | None:
    info = inspect_image(tag)
    return None if info is None else info.image_id


def build_all(
    layout: Layout | None = None,
    *,
    force: bool = False,
    use_bundle: bool = True,
    save: bool = True,
    emit: Callable[[str], None] | None = None,
) -> BuildReport:
    """Make every image current (cached, loaded from the bundle, or built) and report.

    ``force`` rebuilds everything (BuildKit's layer cache still applies). ``use_bundle`` lets
    missing images come from the zstd bundle; ``save`` writes a new bundle when the set of
    images differs from every bundle in the cache.
    """
    layout = layout or Layout.default()
    say = emit or (lambda line: print(f"[images] {line}", flush=True))
    if not docker_available():
        raise ImageBuildError(
            "no Docker daemon answers `docker info` (run scripts/start-docker.sh)"
        )
    start = time.monotonic()
    with _lock(layout.cache_dir):
        hasher = FileHasher(layout.cache_dir / "file-hashes.json")
        specs = image_specs(layout, hasher)
        runner = _Runner(
            layout,
            [BASE_TAG, *(s.tag for s in specs)],
            force=force,
            use_bundle=use_bundle,
            emit=say,
        )
        # Expected inputs of every image. Derived images depend on the base image id, which
        # is only known once the base is current; fill them in after that.
        expected: dict[str, str] = {BASE_TAG: base_inputs(layout)}
        base_id = _base_id_if_current(expected[BASE_TAG])
        if base_id is not None:
            expected.update({s.tag: spec_inputs(s, layout, base_id, hasher) for s in specs})
        runner.ensure(
            BASE_TAG, expected[BASE_TAG], lambda: build_base(layout, expected[BASE_TAG]), expected
        )
        base_info = inspect_image(BASE_TAG)
        assert base_info is not None
        if base_info.image_id != base_id:
            base_id = base_info.image_id
            expected.update({s.tag: spec_inputs(s, layout, base_id, hasher) for s in specs})
        for spec in specs:
            inputs = expected[spec.tag]
            siblings = [s.tag for s in specs]
            build = functools.partial(build_derived, spec, layout, inputs, siblings)
            runner.ensure(spec.tag, inputs, build, expected)
        report = runner.report
        if save and use_bundle:
            current = {o.tag: expected[o.tag] for o in report.outcomes}
            existing = [p for p, images in _bundles(layout.cache_dir) if images == current]
            if existing:
                report.bundle = existing[0]
            else:
                t0 = time.monotonic()
                report.bundle = save_bundle(layout.cache_dir, current)
                size_mb = report.bundle.stat().st_size / 1e6
                say(
                    f"saved   {report.bundle.name:<44} {time.monotonic() - t0:6.1f} s "
                    f"{size_mb:7.0f} MB  (docker save | zstd)"
                )
        hasher.save()
        prune_builds(layout, {s.build for s in specs if s.build is not None})
        if runner.replaced_any:
            # Earlier versions of our images, now untagged; one still used by a container stays.
            subprocess.run(
                [DOCKER, "image", "prune", "--force", "--filter", f"label={LABEL_INPUTS}"],
                capture_output=True,
                check=False,
            )
    report.total_seconds = time.monotonic() - start
    counts = {
        a: sum(1 for o in report.outcomes if o.action == a) for a in ("built", "cached", "loaded")
    }
    summary = ", ".join(f"{n} {a}" for a, n in counts.items() if n)
    say(f"total   {len(report.outcomes)} images ({summary}) in {report.total_seconds:.1f} s")
    return report


def _base_id_if_current(inputs: str) -> str | None:
    info = inspect_image(BASE_TAG)
    if info is None or info.labels.get(LABEL_INPUTS) != inputs:
        return None
    return info.image_id


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="build-images",
        description="Build (or load from .cache/images, or keep) the reference stack's images.",
    )
    parser.add_argument("--root", type=Path, default=None, help="repository root")
    parser.add_argument("--fixtures", type=Path, default=None, help="reference stack directory")
    parser.add_argument(
        "--stack-file", type=Path, default=None, help="stack file (default: FIXTURES/stack.yaml)"
    )
    parser.add_argument("--cache-dir", type=Path, default=None, help="bundle cache directory")
    parser.add_argument("--force", action="store_true", help="rebuild every image")
    parser.add_argument("--no-bundle", action="store_true", help="neither load nor save bundles")
    parser.add_argument("--list", action="store_true", help="print the image tags and exit")
    args = parser.parse_args(argv)
    layout = Layout.default(args.root)
    if args.fixtures is not None:
        layout = dataclasses.replace(layout, fixtures=args.fixtures.resolve())
    if args.stack_file is not None:
        layout = dataclasses.replace(layout, stack=args.stack_file.resolve())
    if args.cache_dir is not None:
        layout = dataclasses.replace(layout, cache_dir=args.cache_dir.resolve())
    try:
        if args.list:
            for tag in [BASE_TAG, *(s.tag for s in image_specs(layout))]:
                print(tag)
            return 0
        build_all(layout, force=args.force, use_bundle=not args.no_bundle)
    except ImageBuildError as exc:
        print(f"[images] error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
