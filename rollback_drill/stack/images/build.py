"""The image build as a run: every image kept, loaded from a bundle, or built, in order.

`build_all` is what ``scripts/build-images.sh`` (through :func:`main`) and the docker backend
call. It takes the cache lock, works out every image's expected inputs (derived images depend
on the base image's id, known once the base is current), brings each image up to date through
one `_Runner`, saves a new bundle when the set of images changed, and prints one line per image
(built / cached / loaded, seconds, size) and the total.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from rollback_drill.process.errors import ImageBuildError
from rollback_drill.stack.images.baseimage import BASE_TAG, base_inputs, build_base
from rollback_drill.stack.images.bundles import cache_lock, list_bundles, load_bundle, save_bundle
from rollback_drill.stack.images.derivedimage import build_derived, spec_inputs
from rollback_drill.stack.images.dockercli import (
    DOCKER,
    LABEL_INPUTS,
    ImageInfo,
    current_inputs,
    docker_available,
    image_id_of,
    inspect_image,
    inspect_images,
    run_logged,
)
from rollback_drill.stack.images.filehash import FileHasher
from rollback_drill.stack.images.layout import Layout
from rollback_drill.stack.images.releasebuilds import prune_builds
from rollback_drill.stack.images.specs import image_specs

Action = Literal["built", "cached", "loaded"]


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
        # Every image as Docker has it at the start, read in one `docker image inspect` (one
        # call per image cost 37 ms each, 1.5 s of a 2.2 s run where all 40 were current);
        # an entry is dropped when this run changes the image (a build, a bundle load).
        found = inspect_images(tags)
        self.known: dict[str, ImageInfo | None] = {tag: found.get(tag) for tag in tags}
        # Image ids at the start of the run: an image that is current now but had another id
        # then, and that this run did not build, came from a bundle.
        self.initial_ids = {tag: info.image_id for tag, info in found.items()}

    def _inspect(self, tag: str) -> ImageInfo | None:
        """The image as Docker has it now: read at the start unless this run changed it."""
        return self.known[tag] if tag in self.known else inspect_image(tag)

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
        for path, images in list_bundles(self.layout.cache_dir):
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
            self.known.clear()  # a load may re-tag any image the bundle holds
            load_bundle(path)
            for kept_tag, image_id in keep.items():
                if image_id_of(kept_tag) != image_id:
                    run_logged([DOCKER, "tag", image_id, kept_tag], what=f"re-tagging {kept_tag}")
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
        before = self._inspect(tag)
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
        self.known.pop(tag, None)
        note = build()
        if current_inputs(tag) != inputs:
            raise ImageBuildError(f"{tag}: built, but its {LABEL_INPUTS} label does not match")
        return self._outcome(tag, "built", time.monotonic() - start, note)


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
    with cache_lock(layout.cache_dir):
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
            existing = [p for p, images in list_bundles(layout.cache_dir) if images == current]
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
