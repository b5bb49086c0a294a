"""What every step of the image build shares: where its inputs and cache are (`Layout`), how a
step fails (`ImageBuildError`) and the version of the way images are assembled (`SCHEMA`).

Kept apart so that the docker, hashing, spec and bundle modules can each name these without
importing one another.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rollback_drill.process.places import shipped
from rollback_drill.process.tools import node_modules_root

DEFAULT_CA_DIR = Path("/usr/local/share/ca-certificates")
DEFAULT_SOURCES = Path("/etc/apt/sources.list.d/debian.sources")


#: Bumped when the way images are assembled changes, so every cached image is rebuilt.
SCHEMA = "rollback-drill-images/1"


@dataclass(frozen=True)
class Layout:
    """Where the inputs and the cache are. By default: the reference stack the package ships,
    and the node_modules (and .cache/images beside it) of the working folder or checkout."""

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
        fixtures = (root / "fixtures" / "safepsy") if root else shipped("safepsy")
        root = (root or node_modules_root()).resolve()
        return cls(
            root=root,
            fixtures=fixtures,
            docker_dir=fixtures / "docker",
            anvil_package=root / "node_modules" / "@foundry-rs" / "anvil-linux-amd64",
            cache_dir=root / ".cache" / "images",
        )
