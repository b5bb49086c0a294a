"""The base image every other image is built FROM: a Debian rootfs, made here.

Nothing can be pulled on this machine, so ``rollback-drill/debian:bookworm`` is a
``mmdebstrap --variant=minbase`` rootfs from the host's own apt sources, written to a file and
``docker import``-ed; its input hash is the suite, the variant, the options and those sources.
"""

from __future__ import annotations

import hashlib
import time

from rollback_drill.stack.images.dockercli import DOCKER, LABEL_INPUTS, LABEL_TITLE, run_logged
from rollback_drill.stack.images.layout import SCHEMA, Layout

BASE_TAG = "rollback-drill/debian:bookworm"
SUITE = "bookworm"
VARIANT = "minbase"


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


def base_inputs(layout: Layout) -> str:
    """The input hash of the base image: suite, variant and the host's apt sources."""
    h = hashlib.sha256()
    for item in (SCHEMA, "base", SUITE, VARIANT, BASE_TAG, *MMDEBSTRAP_OPTIONS):
        h.update(item.encode() + b"\0")
    h.update(layout.sources.read_bytes())
    return h.hexdigest()


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
        run_logged(
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
        run_logged([*args, str(rootfs), BASE_TAG], what="docker import (base)")
        t2 = time.monotonic()
    finally:
        rootfs.unlink(missing_ok=True)
    return f"(mmdebstrap {t1 - t0:.1f} s, docker import {t2 - t1:.1f} s)"
