"""The command line of `rollback-drill`: every command, its options, defaults and help text.

One place for the whole surface, in the order `--help` lists it, so a changed option or help
line shows up in one diff; each command's handler lives with its group (`programme`,
`stack`, `target`) and is bound here as the parsed namespace's `func`.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from pathlib import Path

from rollback_drill.files.fields import positive_float, positive_int
from rollback_drill.process import places
from rollback_drill.stack.select import CHOICES as BACKENDS

Handler = Callable[[argparse.Namespace], int]


def _handler(module: str, name: str) -> Handler:
    """The command's handler, imported only when that command runs: `verify` has a budget of
    a fraction of a second and must not pay for the drill engine's imports."""

    def run(ns: argparse.Namespace) -> int:
        found: Handler = getattr(importlib.import_module(module), name)
        return int(found(ns))

    run.__name__ = run.__qualname__ = name
    return run


DEFAULT_UP_DIR = Path(".rollback-drill")
DEFAULT_REPORTS = Path("reports")  # in the working folder, never the installed package


def _stack_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--stack",
        type=Path,
        default=places.reference_stack(),
        help="stack file: services, stores, chain, releases, decision matrix "
        "(default: the SafePsy reference stack)",
    )


def _backend_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backend",
        choices=list(BACKENDS),
        default="auto",
        help="where the stack runs: local processes, docker containers, auto (docker when a "
        "daemon answers), all (both) (default: auto)",
    )


def _environment_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--environment",
        default="production",
        help="the stack file's environment: production (the file itself, default) or a "
        "profile from its `profiles` (e.g. staging: its own seed size, data and ports)",
    )


def _reports_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--reports-dir",
        type=Path,
        default=DEFAULT_REPORTS,
        help="root of allure-results/, html/, history/, records/, artifacts/ (default reports/)",
    )


def _seed_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--seed-users",
        type=positive_int,
        metavar="N",
        help="users to seed, at least 1 (default: the stack file's seed.users)",
    )


def _shard_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--shard",
        metavar="K/N",
        help="run only the K-th of N shares of the drills (balanced by the durations in "
        "REPORTS_DIR/records, stable by test id); then `report --merge` the N folders",
    )


def _merge_option(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--merge",
        nargs="+",
        type=Path,
        metavar="DIR",
        help="the reports folders of the N shards of one run (`run --shard K/N`): merge them "
        f"into {what}; refused for shards of different commits, stack files or plans",
    )


def _pytest_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "pytest_args",
        nargs="*",
        metavar="PYTEST_ARG",
        help="passed on to pytest; put them after `--` (e.g. `-- -q -k emergency`)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Rollback drills from a runbook: run them, verify a live environment "
        "read-only, bring the reference stack up and down, take integrity baselines.",
        prog="rollback-drill",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run", help="run the drills; write Allure results, the drill record and the HTML report"
    )
    _stack_option(run)
    _backend_option(run)
    _environment_option(run)
    _reports_option(run)
    run.add_argument(
        "--alluredir", type=Path, help="Allure results folder (default: REPORTS_DIR/allure-results)"
    )
    run.add_argument("--no-html", action="store_true", help="skip the HTML report")
    run.add_argument(
        "--drills",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="a folder of the team's own drills, run beside the shipped ones (repeatable)",
    )
    _seed_option(run)
    run.add_argument(
        "--parallel",
        type=positive_int,
        default=1,
        metavar="N",
        help="run N drills at a time, each on its own stack (pytest-xdist; default 1)",
    )
    run.add_argument(
        "--cadence",
        help="run one cadence's suite from the stack file's `cadences` (monthly, quarterly, "
        "annual); the record carries it and `history` tracks it",
    )
    _shard_option(run)
    _pytest_args(run)
    run.set_defaults(func=_handler("rollback_drill.cli.programme", "cmd_run"))

    rep = sub.add_parser("report", help="regenerate the HTML report from existing results")
    _reports_option(rep)
    rep.add_argument(
        "--results", type=Path, help="Allure results to read (default: REPORTS_DIR/allure-results)"
    )
    rep.add_argument(
        "-o", "--output", type=Path, help="folder for the HTML report (default: REPORTS_DIR/html)"
    )
    _merge_option(rep, "one drill record, Allure results, history and HTML report in REPORTS_DIR")
    rep.set_defaults(func=_handler("rollback_drill.cli.programme", "cmd_report"))

    hist = sub.add_parser("history", help="the drills' trend across runs, from the drill records")
    _reports_option(hist)
    hist.add_argument(
        "--records", type=Path, help="drill records folder (default: REPORTS_DIR/records)"
    )
    hist.add_argument(
        "--limit", type=positive_int, metavar="N", help="only the last N drills (N >= 1)"
    )
    hist.add_argument("--drill", help="only this procedure (e.g. emergency)")
    hist.add_argument(
        "--stack", type=Path, default=places.reference_stack(), help="for its `cadences`"
    )
    hist.add_argument(
        "--check-overdue",
        action="store_true",
        help="exit 1 when a cadence has no passing run within its period (for scheduled CI)",
    )
    hist.set_defaults(func=_handler("rollback_drill.cli.programme", "cmd_history"))

    cov = sub.add_parser(
        "coverage",
        help="which runbook commands a drill step performs; uncovered and drifted ones "
        "(exit 1: drift)",
    )
    cov.add_argument(
        "--stack", type=Path, default=places.reference_stack(), help="names the runbook"
    )
    cov.add_argument("--json", action="store_true", help="machine-readable")
    cov.add_argument("--fail-under", type=float, help="exit 1 below this percentage")
    cov.set_defaults(func=_handler("rollback_drill.cli.programme", "cmd_coverage"))

    cert = sub.add_parser(
        "certify",
        help="run the drills for one rollback and issue a certificate (exit 1: not certified)",
    )
    cert.add_argument(
        "--from", dest="from_release", required=True, help="the release rolled back (e.g. 1.5.0)"
    )
    cert.add_argument(
        "--to", dest="to_release", required=True, help="the release rolled back to (e.g. 1.4.0)"
    )
    _stack_option(cert)
    _backend_option(cert)
    _environment_option(cert)
    _reports_option(cert)
    _seed_option(cert)
    _merge_option(cert, "the certificate from them instead of running the drills here")
    _pytest_args(cert)
    cert.set_defaults(func=_handler("rollback_drill.cli.programme", "cmd_certify"))

    verify = sub.add_parser(
        "verify",
        help="verify a live environment after a rollback (exit 0 verified, 1 not recovered, "
        "4 target-file error, 6 not verified, 7 target unreachable)",
        description="Verify a target file's environment: every check at once, a table, the "
        "verdict. Options it does not know (-q, -k EXPR, -x ...) run the suite through pytest "
        "and go to it.",
    )
    verify.add_argument("--target", type=Path, required=True, help="the target file")
    verify.add_argument("--alluredir", type=Path, help="also write Allure results here")
    verify.add_argument(
        "--save-performance",
        type=Path,
        metavar="FILE",
        help="when green, write each flow's p95 to FILE (a target's performance_baseline)",
    )
    verify.add_argument(
        "--pytest", action="store_true", help="run the suite through pytest (as -q, -k... do)"
    )
    verify.add_argument(
        "--dry-run", action="store_true", help="print the pytest command line and exit"
    )
    verify.add_argument("pytest_args", nargs="*", help="extra pytest arguments")
    verify.set_defaults(func=_handler("rollback_drill.cli.target", "cmd_verify"))

    up = sub.add_parser("up", help="start the reference stack and write its target file")
    _stack_option(up)
    up.add_argument(
        "--dir",
        type=Path,
        default=DEFAULT_UP_DIR,
        help="where state.json, target.yaml, baseline.json, the log and the stack live "
        "(default .rollback-drill)",
    )
    up.add_argument(
        "--release",
        help="release to start (default: the environment's profile's, or the first the stack "
        "file lists)",
    )
    _environment_option(up)
    _seed_option(up)
    up.add_argument(
        "--timeout",
        type=positive_float,
        default=120.0,
        metavar="SECONDS",
        help="give up, and stop everything started, if not up by then (default 120)",
    )
    up.set_defaults(func=_handler("rollback_drill.cli.stack", "cmd_up"))

    serve = sub.add_parser("serve")  # internal: the supervisor `up` starts; not listed
    serve.add_argument("--stack", type=Path, required=True, help="stack file")
    serve.add_argument("--dir", type=Path, required=True, help="the `up` directory")
    serve.add_argument("--release", default="", help="release to start")
    serve.add_argument("--seed-users", type=positive_int, help="users to seed")
    serve.add_argument("--token", required=True, help="identifies this supervisor in state.json")
    serve.add_argument("--environment", default="production", help="the environment to start")
    serve.set_defaults(func=_handler("rollback_drill.cli.stack", "cmd_serve"))

    down = sub.add_parser("down", help="stop the stack `up` started")
    down.add_argument(
        "--dir",
        type=Path,
        default=DEFAULT_UP_DIR,
        help="the `up` directory (default .rollback-drill)",
    )
    down.set_defaults(func=_handler("rollback_drill.cli.stack", "cmd_down"))

    def up_dir(cmd: argparse.ArgumentParser) -> None:
        cmd.add_argument(
            "--dir",
            type=Path,
            default=DEFAULT_UP_DIR,
            help="the `up` directory of the stack (default .rollback-drill)",
        )
        cmd.add_argument(
            "--environment",
            default="production",
            help="the environment the stack is (default production, as the runbook's script)",
        )

    rb = sub.add_parser(
        "rollback",
        help="the runbook's auto-rollback.sh on the stack `up` runs: stop, restore the "
        "database, revert the code, rebuild, start, health (exit 1 failed, 2 nothing done)",
    )
    rb.add_argument("--backup", type=Path, metavar="FILE", help="the backup file to restore")
    up_dir(rb)
    rb.set_defaults(func=_handler("rollback_drill.cli.stack", "cmd_rollback"))

    bk = sub.add_parser(
        "backup",
        help="back up the stores of the stack `up` runs into one owner-only file "
        "(the runbook's ./docker-manage.sh backup production)",
    )
    bk.add_argument("-o", "--output", type=Path, help="folder for it (default DIR/backups)")
    up_dir(bk)
    bk.set_defaults(func=_handler("rollback_drill.cli.stack", "cmd_backup"))

    fp = sub.add_parser(
        "fingerprint", help="take an integrity baseline of a target before a change"
    )
    fp.add_argument("--target", type=Path, required=True, help="the target file")
    fp.add_argument(
        "-o",
        "--output",
        type=Path,
        help="where to write it (default: the target's integrity.baseline, beside the file)",
    )
    fp.add_argument(
        "--collections",
        nargs="*",
        metavar="NAME",
        help="collections to fingerprint (default: the target's integrity.collections)",
    )
    fp.set_defaults(func=_handler("rollback_drill.cli.target", "cmd_fingerprint"))

    assess = sub.add_parser(
        "assess",
        help="Pre-Rollback Assessment of a live target: what is wrong, and the matrix's "
        "recommended rollback type and time budget (exit 1: a rollback is recommended)",
    )
    assess.add_argument("--target", type=Path, required=True, help="the target file")
    assess.add_argument(
        "--stack",
        type=Path,
        default=places.reference_stack(),
        help="stack file with the classification and decision matrix (default: the reference)",
    )
    assess.add_argument(
        "--backups",
        type=Path,
        help="folder of store backups, to measure the data-loss risk of a restore",
    )
    assess.set_defaults(func=_handler("rollback_drill.cli.target", "cmd_assess"))

    doctor = sub.add_parser("doctor", help="check that every tool and the stack file are usable")
    _stack_option(doctor)
    doctor.add_argument(
        "--dir",
        type=Path,
        default=DEFAULT_UP_DIR,
        help="the `up` directory: a stack up there is asked whether the stack file's integrity "
        "collections exist (default .rollback-drill)",
    )
    doctor.set_defaults(func=_handler("rollback_drill.cli.stack", "cmd_doctor"))
    return parser
