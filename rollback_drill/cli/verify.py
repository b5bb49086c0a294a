"""`rollback-drill verify` and `rollback-drill fingerprint`: the CLI's side of the verify
suite. `fingerprint` takes the integrity baseline before a change.

`verify` asks every check at once and prints the table, the writes and the verdict, with the
suite's exit codes - the same functions `pytest -m verify` reports through, without pytest's
start-up (a third of the run). Given pytest options (`-q`, `-k EXPR`...), `--alluredir` or
`--pytest`, it runs the suite through pytest in this process instead, loading only the plugins
it needs.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from rollback_drill.files.targetspec import load_target
from rollback_drill.plugin.verification import ExitCode
from rollback_drill.process.errors import SpecError
from rollback_drill.process.places import shipped

_OWN_WITH_VALUE = ("--target", "--alluredir", "--save-performance")
_OWN_FLAGS = ("--dry-run", "--pytest", "-h", "--help")


def split_args(args: Sequence[str]) -> tuple[list[str], list[str]]:
    """`verify`'s own options, and everything else for pytest in the order given (`--`
    sends the rest to pytest as is)."""
    own: list[str] = []
    passed: list[str] = []
    items = iter(args)
    for arg in items:
        if arg == "--":
            passed.extend(items)
        elif arg in _OWN_WITH_VALUE:
            own += [arg, next(items, "")]
        elif arg in _OWN_FLAGS or arg.split("=", 1)[0] in _OWN_WITH_VALUE:
            own.append(arg)
        else:
            passed.append(arg)
    return own, passed


def pytest_argv(
    target: Path,
    alluredir: Path | None = None,
    save_performance: Path | None = None,
    extra: Sequence[str] = (),
) -> list[str]:
    """The pytest command line behind `rollback-drill verify` (printed by --dry-run)."""
    suite = str(shipped("verifications"))  # the package's: works from any folder
    args = [
        suite, "-m", "verify", f"--target={target}", "-p", "no:cacheprovider",
        # only what a verify run needs: third-party plugins cost a tenth of a second to load
        "--disable-plugin-autoload", "-p", "rollback_drill.plugin.core",
    ]  # fmt: skip
    if alluredir is not None:
        args += ["-p", "allure_pytest.plugin", "--alluredir", str(alluredir)]
    if save_performance is not None:
        args += ["--save-performance", str(save_performance)]
    return args + list(extra)


def verify(
    target: Path,
    alluredir: Path | None = None,
    save_performance: Path | None = None,
    extra: Sequence[str] = (),
    through_pytest: bool = False,
) -> int:
    """Exit status: see verification.ExitCode (pytest's own codes pass through)."""
    if not (through_pytest or alluredir or extra):
        return verify_directly(target, save_performance)
    if not any(a.startswith(("-k", "--deselect", "-m")) or "::" in a for a in extra):
        from rollback_drill.plugin.verification import start_early

        start_early(target)  # the checks run while pytest starts (see verification.EarlyRun)
    import pytest

    return int(pytest.main(pytest_argv(target, alluredir, save_performance, extra)))


def exit_now(code: int) -> NoReturn:
    """End the `verify` command without the interpreter's teardown: pymongo joins its monitor
    threads and a large heap is torn down, ~0.15 s of a sub-second run. Everything the run
    writes is closed by then; only the output streams and log handlers need flushing."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def verify_directly(path: Path, save_performance: Path | None = None) -> int:
    """Every check at once; the table, the writes, the verdict; the suite's exit status."""
    from rollback_drill.checks import ALL_CHECKS, run_checks_concurrently
    from rollback_drill.plugin.verification import (
        load_for_verify,
        save_performance_baseline,
        status,
        table,
        verdict,
        writes,
    )
    from rollback_drill.process.errors import TargetUnreachable

    try:
        target = load_for_verify(path)
    except SpecError as exc:
        print(f"rollback-drill: {exc}", file=sys.stderr)
        return int(ExitCode.TARGET_FILE_ERROR)
    except TargetUnreachable as exc:
        print(f"rollback-drill: {exc}", file=sys.stderr)
        return int(ExitCode.UNREACHABLE)
    outcomes = run_checks_concurrently(ALL_CHECKS, target)
    lines = table(outcomes, shutil.get_terminal_size().columns)
    made = writes(outcomes)
    if made:
        lines += ["writes made by this run:", *(f"  {line}" for line in made)]
    code = status(outcomes)
    if save_performance is not None:
        saved = code is ExitCode.VERIFIED
        if saved:
            save_performance_baseline(save_performance, outcomes, str(path))
        note = f"written to {save_performance}" if saved else "not written (not verified)"
        lines.append(f"performance baseline: {note}")
    lines.append(verdict(outcomes, target.origin()))
    print("\n".join(lines))
    return int(code)


def fingerprint(target_path: Path, output: Path | None, collections: list[str] | None) -> int:
    """Write the integrity baseline; refuse one that would protect nothing. Exit status as
    `verify`'s: 4 for the target file (or a baseline it refuses), 7 when MongoDB is not there."""
    from pymongo.errors import PyMongoError

    from rollback_drill.process.secrets import public_url
    from rollback_drill.stack.target import mongodb_of
    from rollback_drill.stores import mongo

    try:
        spec = load_target(target_path)
        uri = mongodb_of(target_path, spec)
    except SpecError as exc:
        print(f"rollback-drill: {exc}", file=sys.stderr)
        return int(ExitCode.TARGET_FILE_ERROR)
    names = collections or (list(spec.integrity.collections) if spec.integrity else ["users"])
    if output is None:
        base = spec.integrity.baseline if spec.integrity else "baseline.json"
        output = target_path.resolve().parent / base
    try:
        taken = mongo.fingerprint(
            uri.reveal(), spec.mongodb_database, names, spec.thresholds.request_timeout_s
        )
    except PyMongoError as exc:
        first = str(exc).split(", Timeout:")[0].split(" (configured timeouts")[0]
        print(
            f"rollback-drill: {target_path}: cannot read MongoDB at "
            f"{public_url(uri.reveal())} ({spec.mongodb_database}): {first}",
            file=sys.stderr,
        )
        return int(ExitCode.UNREACHABLE)
    refused = taken.empty_collections()
    if refused:
        print(
            f"rollback-drill: {target_path}: integrity.collections: refusing a baseline of "
            f"{', '.join(refused)} in {spec.mongodb_database} - it would prove nothing; name "
            "collections that hold data (or take the baseline once they do)",
            file=sys.stderr,
        )
        return int(ExitCode.TARGET_FILE_ERROR)
    taken.save(output)
    for name, entry in taken.collections.items():
        indexes = ", ".join(i.name for i in entry.indexes)
        print(
            f"{name}: {entry.count} documents, indexes [{indexes}], sha256 {entry.sha256[:16]}..."
        )
    print(f"baseline written to {output}")
    return 0


__all__ = ["SpecError", "fingerprint", "pytest_argv", "verify"]
