"""`rollback-drill`: run drills, verify a live target, bring the reference stack up and down,
take an integrity baseline, check the machine; report, history and certify the drills.

`up`, `serve` and `down` live in `supervisor` (a stack that outlives the command, owned by a
supervisor `down` can prove is its own). Errors users can cause end here as one line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pymongo.errors import PyMongoError

from rollback_drill import supervisor
from rollback_drill.fields import positive_float, positive_int
from rollback_drill.spec import SpecError, load_stack
from rollback_drill.stack.base import StackError
from rollback_drill.stack.select import CHOICES as BACKENDS
from rollback_drill.stores.mongo import ArchiveError
from rollback_drill.tools import PROJECT_ROOT, ToolMissing, find_tool

DEFAULT_STACK = PROJECT_ROOT / "fixtures" / "safepsy" / "stack.yaml"
DEFAULT_UP_DIR = Path(".rollback-drill")
DEFAULT_REPORTS = PROJECT_ROOT / "reports"


def _pytest(args: list[str]) -> int:
    import pytest

    return int(pytest.main(args))


def cmd_run(ns: argparse.Namespace) -> int:
    from rollback_drill import report_html as report

    reports: Path = ns.reports_dir
    results: Path = ns.alluredir or reports / "allure-results"
    report.clean_results(results)  # the report must show this run only; history keeps the past
    args = [
        str(PROJECT_ROOT / "drills"),
        "--alluredir",
        str(results),
        "-p",
        "no:cacheprovider",
        "--stack-file",
        str(ns.stack),
        "--stack-backend",
        ns.backend,
        "--drill-artifacts",
        str(reports / "artifacts"),
        "--drill-records",
        str(reports / "records"),
        "--drill-invocation",
        "run",
    ]
    if ns.seed_users:
        args += ["--seed-users", str(ns.seed_users)]
    args += ["--environment", ns.environment]
    if ns.cadence:
        args += _cadence_args(ns.stack, ns.cadence, ns.pytest_args)
    if ns.parallel > 1:
        args += ["-n", str(ns.parallel)]  # pytest-xdist: a stack per drill, one record
    code = _pytest(args + ns.pytest_args)
    if ns.no_html:
        return code
    sys.stdout.flush()
    generated = _generate(results, reports)
    return code if generated == 0 else (code or generated)


def _cadence_args(stack: Path, name: str, pytest_args: list[str]) -> list[str]:
    """`-m` with the cadence's suite (the stack file's `cadences`), and the name for the record."""
    from rollback_drill import cadence

    if any(a == "-m" or (a.startswith("-m") and not a.startswith("--")) for a in pytest_args):
        raise SpecError("--cadence chooses the drills by marker: do not pass -m as well")
    chosen = cadence.selection(load_stack(stack), name)
    print(f"cadence {name}: every {chosen.period_days} days, drills -m {chosen.select!r}")
    return ["-m", chosen.select, "--drill-cadence", name]


def _generate(results: Path, reports: Path, output: Path | None = None) -> int:
    from rollback_drill import report_html as report

    history = reports / "history" / "history.jsonl"
    try:
        made = report.generate_html(results, output or reports / "html", history=history)
    except (report.ReportError, ToolMissing) as exc:
        print(f"rollback-drill: HTML report not generated: {exc}", file=sys.stderr)
        return 1
    runs = len(history.read_text().splitlines()) if history.exists() else 0
    note = (
        "these results appended"
        if made.appended
        else "these results were already in it, not appended again"
    )
    print(f"HTML report: {made.index} ({made.seconds:.1f} s)")
    print(f"history: {note}; {runs} run(s) in {history}")
    return 0


def cmd_report(ns: argparse.Namespace) -> int:
    reports: Path = ns.reports_dir
    return _generate(ns.results or reports / "allure-results", reports, ns.output)


def cmd_history(ns: argparse.Namespace) -> int:
    from rollback_drill import cadence, history, record

    records = ns.records or ns.reports_dir / "records"
    cadences = load_stack(ns.stack).spec.cadences
    print(history.render(records, limit=ns.limit, drill=ns.drill, cadences=cadences))
    if not ns.check_overdue:
        return 0
    late = [s for s in cadence.statuses(record.load_all(records)[0], cadences) if s.overdue]
    print(f"\nOVERDUE: {', '.join(s.name for s in late)}" if late else "\nno cadence is overdue")
    return 1 if late else 0


def cmd_coverage(ns: argparse.Namespace) -> int:
    """Exit 1 on drift (a step quotes what the runbook no longer says) or under --fail-under;
    2 when a procedure module cannot be imported (its steps would silently not count)."""
    from rollback_drill import coverage

    loaded = load_stack(ns.stack)
    found = coverage.measure(loaded.resolve(loaded.spec.runbook))
    if ns.json:
        print(json.dumps(found.to_json(), indent=2))
    else:
        print(coverage.render(found, shown_path=loaded.spec.runbook))
    if found.problems:
        return 2
    under = ns.fail_under is not None and found.percent < ns.fail_under
    if under:
        print(f"coverage {found.percent:.1f} % is under --fail-under {ns.fail_under:g} %")
    return 1 if found.drifted or under else 0


def cmd_certify(ns: argparse.Namespace) -> int:
    from rollback_drill import certify

    issued = certify.run(
        bad=ns.from_release,
        good=ns.to_release,
        stack=ns.stack,
        backend=ns.backend,
        reports=ns.reports_dir,
        seed_users=ns.seed_users,
        pytest_args=ns.pytest_args,
        environment=ns.environment,
    )
    state = "CERTIFIED" if issued.verdict.certified else "NOT CERTIFIED"
    where = "" if ns.environment == "production" else f" on {ns.environment}"
    print(f"\nrollback {ns.from_release} -> {ns.to_release}{where}: {state}")
    for reason in issued.verdict.reasons:
        print(f"  - {reason}")
    print(f"certificate: {issued.markdown}\n             {issued.html}")
    if issued.record is not None:
        print(f"drill record: {issued.record} (sha256 {issued.record_sha256})")
    return 0 if issued.verdict.certified else 1


def cmd_verify(ns: argparse.Namespace) -> int:
    from rollback_drill import verify_command

    if ns.dry_run:
        argv = verify_command.pytest_argv(
            ns.target, ns.alluredir, ns.save_performance, ns.pytest_args
        )
        print("pytest " + " ".join(argv))
        return 0
    return verify_command.verify(
        ns.target, ns.alluredir, ns.save_performance, ns.pytest_args, ns.pytest
    )


def cmd_up(ns: argparse.Namespace) -> int:
    return supervisor.up(ns.stack, ns.dir, ns.release, ns.seed_users, ns.timeout, ns.environment)


def cmd_serve(ns: argparse.Namespace) -> int:
    """The supervisor behind `up`: owns the stack until SIGTERM/SIGINT."""
    return supervisor.serve(
        ns.stack, ns.dir, ns.release or None, ns.seed_users, ns.token, ns.environment
    )


def cmd_down(ns: argparse.Namespace) -> int:
    return supervisor.down(ns.dir)


def cmd_rollback(ns: argparse.Namespace) -> int:
    """The runbook's auto-rollback.sh against the stack `up` runs (autorollback.py)."""
    from rollback_drill import autorollback

    return autorollback.rollback(ns.dir, ns.backup, ns.environment)


def cmd_backup(ns: argparse.Namespace) -> int:
    from rollback_drill import autorollback

    return autorollback.backup(ns.dir, ns.environment, ns.output)


def cmd_fingerprint(ns: argparse.Namespace) -> int:
    from rollback_drill import verify_command

    return verify_command.fingerprint(ns.target, ns.output, ns.collections)


def cmd_assess(ns: argparse.Namespace) -> int:
    """The runbook's Pre-Rollback Assessment against a live target: exit 1 when the matrix
    recommends a rollback (the row is printed), 3 when nothing failed but some checks could
    not look (not verified is not fine), 0 when every check passed."""
    from rollback_drill import assess
    from rollback_drill.target import target_from_file

    target = target_from_file(ns.target)
    found = assess.live(target, load_stack(ns.stack), ns.backups)
    assessed = found.assessed
    print(f"Pre-Rollback Assessment of {target.name}")
    for o in assessed.checks:
        state = "NOT VERIFIED" if o.result is None else ("ok" if o.result.ok else "FAIL")
        reason = o.skipped if o.result is None else o.result.summary
        print(f"  {state:12} {o.check.name:36} {(reason or '')[:90]}")
    print(f"data integrity: {assessed.integrity_status()}")
    if assessed.data_loss is not None:
        print(f"data-loss risk: {assessed.data_loss.explain()}")
    unverified = [o.check.name for o in assessed.checks if o.result is None]
    if found.decision is None and unverified:
        print(
            f"recommendation: none - nothing failed, but {len(unverified)} check(s) could not "
            f"look: {', '.join(unverified)}"
        )
        return 3
    if found.decision is None:
        print("recommendation: no rollback indicated - every check passed")
        return 0
    decision = found.decision
    print(f"affected services: {', '.join(decision.affected_services) or 'unknown'}")
    print(
        f"recommendation: {decision.severity} ({decision.row.impact}) -> "
        f"{decision.row.rollback_type} rollback, within {decision.row.budget_s:.0f} s"
    )
    for finding in decision.deciding:
        print(f"  because {finding.explain()}")
    return 1


def cmd_doctor(ns: argparse.Namespace) -> int:
    ok = True
    for tool in [
        "secantusd-py",
        "redis-server",
        "nginx",
        "anvil",
        "mongosh",
        "allure",
        "chromium",
        "node",
    ]:
        try:
            print(f"ok      {tool}: {find_tool(tool)}")
        except ToolMissing as exc:
            ok = False
            print(f"MISSING {exc}")
    try:
        load_stack(ns.stack)
        print(f"ok      stack file {ns.stack}")
    except SpecError as exc:
        ok = False
        print(f"BROKEN  {exc}")
    return 0 if ok else 1


def _stack_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--stack",
        type=Path,
        default=DEFAULT_STACK,
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
    _pytest_args(run)
    run.set_defaults(func=cmd_run)

    rep = sub.add_parser("report", help="regenerate the HTML report from existing results")
    _reports_option(rep)
    rep.add_argument(
        "--results", type=Path, help="Allure results to read (default: REPORTS_DIR/allure-results)"
    )
    rep.add_argument(
        "-o", "--output", type=Path, help="folder for the HTML report (default: REPORTS_DIR/html)"
    )
    rep.set_defaults(func=cmd_report)

    hist = sub.add_parser("history", help="the drills' trend across runs, from the drill records")
    _reports_option(hist)
    hist.add_argument(
        "--records", type=Path, help="drill records folder (default: REPORTS_DIR/records)"
    )
    hist.add_argument(
        "--limit", type=positive_int, metavar="N", help="only the last N drills (N >= 1)"
    )
    hist.add_argument("--drill", help="only this procedure (e.g. emergency)")
    hist.add_argument("--stack", type=Path, default=DEFAULT_STACK, help="for its `cadences`")
    hist.add_argument(
        "--check-overdue",
        action="store_true",
        help="exit 1 when a cadence has no passing run within its period (for scheduled CI)",
    )
    hist.set_defaults(func=cmd_history)

    cov = sub.add_parser(
        "coverage",
        help="which runbook commands a drill step performs; uncovered and drifted ones "
        "(exit 1: drift)",
    )
    cov.add_argument("--stack", type=Path, default=DEFAULT_STACK, help="names the runbook")
    cov.add_argument("--json", action="store_true", help="machine-readable")
    cov.add_argument("--fail-under", type=float, help="exit 1 below this percentage")
    cov.set_defaults(func=cmd_coverage)

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
    _pytest_args(cert)
    cert.set_defaults(func=cmd_certify)

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
    verify.set_defaults(func=cmd_verify)

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
    up.set_defaults(func=cmd_up)

    serve = sub.add_parser("serve")  # internal: the supervisor `up` starts; not listed
    serve.add_argument("--stack", type=Path, required=True, help="stack file")
    serve.add_argument("--dir", type=Path, required=True, help="the `up` directory")
    serve.add_argument("--release", default="", help="release to start")
    serve.add_argument("--seed-users", type=positive_int, help="users to seed")
    serve.add_argument("--token", required=True, help="identifies this supervisor in state.json")
    serve.add_argument("--environment", default="production", help="the environment to start")
    serve.set_defaults(func=cmd_serve)

    down = sub.add_parser("down", help="stop the stack `up` started")
    down.add_argument(
        "--dir",
        type=Path,
        default=DEFAULT_UP_DIR,
        help="the `up` directory (default .rollback-drill)",
    )
    down.set_defaults(func=cmd_down)

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
    rb.set_defaults(func=cmd_rollback)

    bk = sub.add_parser(
        "backup",
        help="back up the stores of the stack `up` runs into one owner-only file "
        "(the runbook's ./docker-manage.sh backup production)",
    )
    bk.add_argument("-o", "--output", type=Path, help="folder for it (default DIR/backups)")
    up_dir(bk)
    bk.set_defaults(func=cmd_backup)

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
    fp.set_defaults(func=cmd_fingerprint)

    assess = sub.add_parser(
        "assess",
        help="Pre-Rollback Assessment of a live target: what is wrong, and the matrix's "
        "recommended rollback type and time budget (exit 1: a rollback is recommended)",
    )
    assess.add_argument("--target", type=Path, required=True, help="the target file")
    assess.add_argument(
        "--stack",
        type=Path,
        default=DEFAULT_STACK,
        help="stack file with the classification and decision matrix (default: the reference)",
    )
    assess.add_argument(
        "--backups",
        type=Path,
        help="folder of store backups, to measure the data-loss risk of a restore",
    )
    assess.set_defaults(func=cmd_assess)

    doctor = sub.add_parser("doctor", help="check that every tool and the stack file are usable")
    _stack_option(doctor)
    doctor.set_defaults(func=cmd_doctor)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["verify"]:  # `verify --target X -q -k health`: what is not ours is pytest's
        from rollback_drill import verify_command
        from rollback_drill.verify_command import split_args

        own, passed = split_args(args[1:])
        ns = parser.parse_args(["verify", *own])
        ns.pytest_args = passed
        if argv is None:  # the command itself, not a caller in this process
            verify_command.exit_now(int(ns.func(ns)))
    else:
        ns = parser.parse_args(args)
    try:
        return int(ns.func(ns))
    except (SpecError, StackError, ArchiveError) as exc:
        print(f"rollback-drill: {exc}", file=sys.stderr)
        return 2
    except PyMongoError as exc:
        where = f"{ns.target}: mongodb_uri: " if getattr(ns, "target", None) else ""
        first = str(exc).split(",")[0].splitlines()[0]
        print(f"rollback-drill: {where}cannot reach MongoDB ({first})", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
