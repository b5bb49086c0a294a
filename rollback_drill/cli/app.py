"""`rollback-drill`: run drills, verify a live target, bring the reference stack up and down,
take an integrity baseline, check the machine; report, history and certify the drills.

This module is the entry point (`rollback_drill.cli.app:main`, `python -m rollback_drill.cli`):
it parses the command line (`parser`), hands `verify` the arguments that are pytest's, runs
the command's handler, and ends the errors users can cause here as one line (exit 2).
`up`, `serve` and `down` live in `stack.upstack.supervisor` (a stack that outlives the
command, owned by a supervisor `down` can prove is its own).
"""

from __future__ import annotations

import sys

from rollback_drill.cli.parser import build_parser
from rollback_drill.process.errors import SpecError


def main(argv: list[str] | None = None) -> int:
    """Run the command `argv` names (default: this process's arguments); its exit status."""
    parser = build_parser()
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["verify"]:  # `verify --target X -q -k health`: what is not ours is pytest's
        from rollback_drill.cli import verify as verify_command
        from rollback_drill.cli.verify import split_args

        own, passed = split_args(args[1:])
        ns = parser.parse_args(["verify", *own])
        ns.pytest_args = passed
        if argv is None:  # the command itself, not a caller in this process
            verify_command.exit_now(int(ns.func(ns)))
    else:
        ns = parser.parse_args(args)
    try:
        return int(ns.func(ns))
    except Exception as exc:
        said = _one_line(exc, getattr(ns, "target", None))
        if said is None:
            raise
        print(f"rollback-drill: {said}", file=sys.stderr)
        return 2


def _one_line(exc: Exception, target: object) -> str | None:
    """What an error a user can cause says, in one line; None for a bug (its traceback is
    wanted). The error types load only once something is raised: importing pymongo and the
    stack engine up front would cost every command, `verify` included, a tenth of a second."""
    from pymongo.errors import PyMongoError

    from rollback_drill.process.errors import StackError
    from rollback_drill.stores.mongo import ArchiveError

    if isinstance(exc, SpecError | StackError | ArchiveError):
        return str(exc)
    if isinstance(exc, PyMongoError):
        where = f"{target}: mongodb_uri: " if target else ""
        first = str(exc).split(",")[0].splitlines()[0]
        return f"{where}cannot reach MongoDB ({first})"
    return None


if __name__ == "__main__":
    sys.exit(main())
