"""What an image is made from, without Docker: a release's image inputs follow its patches and
the base sources, so a changed patch can never leave a stale image in use (the docker
backend runs an image only when its inputs label matches these)."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from rollback_drill.process.errors import ImageBuildError
from rollback_drill.stack.images.derivedimage import spec_inputs
from rollback_drill.stack.images.filehash import FileHasher
from rollback_drill.stack.images.layout import Layout
from rollback_drill.stack.images.specs import image_specs

FIXTURES = Layout.default().fixtures


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    """The reference stack copied aside, with a cache of its own."""
    copy = tmp_path / "safepsy"
    shutil.copytree(FIXTURES, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return dataclasses.replace(Layout.default(), fixtures=copy, cache_dir=tmp_path / "cache")


HASHER = FileHasher()  # remembers file digests by (size, mtime, inode) across tests


def _inputs(layout: Layout) -> dict[str, str]:
    """Input hashes of the release images (the store and chain images do not depend on it)."""
    return {
        s.tag: spec_inputs(s, layout, "base-id", HASHER)
        for s in image_specs(layout, HASHER)
        if s.release is not None
    }


def test_every_listed_release_has_app_and_frontend_images(layout: Layout) -> None:
    tags = set(_inputs(layout))
    for release in ("1.4.0", "1.4.1", "1.5.0", "1.6.0", "1.7.0", "1.8.0", "1.8.1", "1.8.2"):
        for service in ("backend", "ai-chatbot", "frontend"):
            assert f"rollback-drill/safepsy-{service}:{release}" in tags


def test_a_changed_patch_changes_only_its_releases_image(layout: Layout) -> None:
    before = _inputs(layout)
    patch = layout.fixtures / "releases" / "patches" / "1.8.1-frontend-chat-endpoint.patch"
    patch.write_text(patch.read_text().replace("/api/assistant/chat", "/api/helper/chat"))
    after = _inputs(layout)
    changed = sorted(tag for tag in before if before[tag] != after[tag])
    assert changed == ["rollback-drill/safepsy-frontend:1.8.1"]
    spec = next(s for s in image_specs(layout) if s.tag == "rollback-drill/safepsy-frontend:1.8.1")
    assert spec.build is not None
    assert "/api/helper/chat" in (spec.build / "frontend" / "index.html").read_text()


def test_a_changed_base_source_changes_every_release_built_from_it(
    layout: Layout,
) -> None:
    before = _inputs(layout)
    source = layout.fixtures / "app" / "safepsy_app" / "replies.py"
    source.write_text(source.read_text() + "\n# a change in the base sources\n")
    after = _inputs(layout)
    changed = {tag for tag in before if before[tag] != after[tag]}
    apps = {
        t
        for t in before
        if t.startswith(("rollback-drill/safepsy-backend:", "rollback-drill/safepsy-ai-chatbot:"))
    }
    assert changed == apps


def test_a_patch_that_does_not_apply_is_a_clear_error(layout: Layout) -> None:
    patch = layout.fixtures / "releases" / "patches" / "1.8.0-backend-did-health.patch"
    patch.write_text(patch.read_text().replace("\n ", "\n #", 3))
    with pytest.raises(ImageBuildError, match=r"release 1\.8\.0, service backend"):
        image_specs(layout)
