"""Benchmark: time to ready of the docker stack (cold images and cached images) beside the
local backend's, all from one run. Prints figures; asserts nothing (target: docker ready in
8 s or less with cached images on this 2-core machine).

Cold means the stack's images are not in the daemon: `--cold bundle` removes them and lets
the stack load them from the zstd cache (.cache/images), `--cold scratch` removes the cache
too, so everything is built from Debian packages. It removes only rollback-drill/* images.
Run: .venv/bin/python benchmarks/bench_backends.py [--runs N] [--cold none|bundle|scratch]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import time
from pathlib import Path

from rollback_drill.files.spec import LoadedStack, load_stack
from rollback_drill.stack.select import make_stack

PROJECT_ROOT = Path(__file__).resolve().parents[1]  # this checkout


def ready_time(backend: str, loaded: LoadedStack) -> tuple[float, float]:
    """(seconds from nothing to healthy including construction, seconds of `up` alone)."""
    start = time.monotonic()
    stack = make_stack(backend, loaded)
    built = time.monotonic()
    try:
        stack.up("1.4.0")
        done = time.monotonic()
    finally:
        stack.down()
    return done - start, done - built


def remove_images(scratch: bool) -> None:
    refs = subprocess.run(
        ["docker", "images", "--format", "{{.Repository}}:{{.Tag}}", "rollback-drill/*"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    if refs:
        subprocess.run(["docker", "rmi", "-f", *refs], capture_output=True, check=False)
    if scratch:
        shutil.rmtree(PROJECT_ROOT / ".cache" / "images", ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cold", choices=["none", "bundle", "scratch"], default="bundle")
    args = parser.parse_args()
    import web3  # noqa: F401 - a one-off per process; not part of any stack's ready time

    loaded = load_stack(PROJECT_ROOT / "fixtures" / "safepsy" / "stack.yaml")
    if args.cold != "none":
        remove_images(scratch=args.cold == "scratch")
        total, up = ready_time("docker", loaded)
        print(f"docker, cold images ({args.cold}): ready in {total:.2f} s "
              f"(images {total - up:.2f} s, stack up {up:.2f} s)")  # fmt: skip
    results: dict[str, list[float]] = {"local": [], "docker": []}
    for run in range(1, args.runs + 1):
        for backend in results:
            total, _ = ready_time(backend, loaded)
            results[backend].append(total)
            print(f"run {run}: {backend:6} ready in {total:.2f} s")
    for backend, times in results.items():
        label = "cached images" if backend == "docker" else "processes"
        print(f"{backend} ({label}): median {statistics.median(times):.2f} s, "
              f"min {min(times):.2f} s, max {max(times):.2f} s")  # fmt: skip


if __name__ == "__main__":
    main()
