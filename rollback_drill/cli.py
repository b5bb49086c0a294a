"""`rollback-drill`: run drills, verify a live target, bring the reference stack up and down,
take an integrity baseline, check the machine; report, history and certify the drills.

`up` detaches a small supervisor process that owns the stack (so the stack outlives the
command, but not the supervisor) and returns once the stack is healthy and its target file
is written; `down` asks that supervisor to tear everything down.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from rollback_drill import proc
from rollback_drill.spec import SpecError, load_stack
from rollback_drill.stack.select import CHOICES as BACKENDS
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
    if ns.cadence:
        args += _cadence_args(ns.stack, ns.cadence, ns.pytest_args)
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
    )
    state = "CERTIFIED" if issued.verdict.certified else "NOT CERTIFIED"
    print(f"\nrollback {ns.from_release} -> {ns.to_release}: {state}")
    for reason in issued.verdict.reasons:
        print(f"  - {reason}")
    print(f"certificate: {issued.markdown}\n             {issued.html}")
    if issued.record is not None:
        print(f"drill record: {issued.record} (sha256 {issued.record_sha256})")
    return 0 if issued.verdict.certified else 1


def cmd_verify(ns: argparse.Namespace) -> int:
    args = [
        str(PROJECT_ROOT / "verifications"),
        "-m",
        "verify",
        "--target",
        str(ns.target),
        "-p",
        "no:cacheprovider",
    ]
    if ns.alluredir:
        args += ["--alluredir", str(ns.alluredir)]
    return _pytest(args + ns.pytest_args)


def _state_path(directory: Path) -> Path:
    return directory / "state.json"


def cmd_up(ns: argparse.Namespace) -> int:
    directory: Path = ns.dir.resolve()
    state = _state_path(directory)
    if state.exists():
        pid = json.loads(state.read_text()).get("pid")
        if pid and proc._pid_alive(int(pid)):
            print(
                f"a stack is already up in {directory} (supervisor pid {pid}); "
                "`rollback-drill down` first"
            )
            return 1
        state.unlink()
    directory.mkdir(parents=True, exist_ok=True)
    argv = [
        sys.executable,
        "-m",
        "rollback_drill.cli",
        "serve",
        "--stack",
        str(ns.stack),
        "--dir",
        str(directory),
        "--release",
        ns.release or "",
    ]
    if ns.seed_users:
        argv += ["--seed-users", str(ns.seed_users)]
    log = directory / "supervisor.log"
    with log.open("ab") as out:
        child = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    deadline = time.monotonic() + ns.timeout
    while time.monotonic() < deadline:
        if child.poll() is not None:
            print(
                f"the stack failed to start; see {log}:\n" + log.read_text()[-3000:],
                file=sys.stderr,
            )
            return 1
        if state.exists():
            info = json.loads(state.read_text())
            print(f"stack up ({info['ready_s']:.2f} s): target file {info['target']}")
            print(f"verify it:  pytest -m verify --target {info['target']}")
            print(f"stop it:    rollback-drill down --dir {directory}")
            return 0
        time.sleep(0.1)
    child.terminate()
    print(f"the stack was not up within {ns.timeout} s; see {log}", file=sys.stderr)
    return 1


def cmd_serve(ns: argparse.Namespace) -> int:
    """The supervisor behind `up`: owns the stack until SIGTERM/SIGINT."""
    from rollback_drill.stack.local import LocalStack
    from rollback_drill.targetfile import write_target_file

    loaded = load_stack(ns.stack)
    directory: Path = ns.dir
    release = ns.release or next(iter(loaded.releases))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stack = LocalStack(loaded, workdir=directory / "stack", seed_users=ns.seed_users)
    stack.up(release)
    try:
        target_file = write_target_file(stack.target(), directory, stack.password_file)
        _state_path(directory).write_text(
            json.dumps(
                {
                    "pid": os.getpid(),
                    "target": str(target_file),
                    "ready_s": stack.timings.get("ready_s", 0.0),
                    "release": release,
                    "workdir": str(stack.workdir),
                }
            )
        )
        stop.wait()
    finally:
        stack.down()
        shutil.rmtree(stack.workdir, ignore_errors=True)
        _state_path(directory).unlink(missing_ok=True)
    return 0


def cmd_down(ns: argparse.Namespace) -> int:
    state = _state_path(ns.dir.resolve())
    if not state.exists():
        print(f"no stack is up in {ns.dir}")
        return 0
    pid = int(json.loads(state.read_text())["pid"])
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        state.unlink(missing_ok=True)
        return 0
    try:
        proc.wait_until(lambda: not proc._pid_alive(pid), timeout=30, what="supervisor exit")
    except TimeoutError:
        os.killpg(pid, signal.SIGKILL)
    print("stack down")
    return 0


def cmd_fingerprint(ns: argparse.Namespace) -> int:
    from rollback_drill.stores import mongo
    from rollback_drill.target import target_from_file

    target = target_from_file(ns.target)
    collections = ns.collections or list(target.integrity_collections)
    print_ = mongo.fingerprint(target.mongodb_uri.reveal(), target.mongodb_database, collections)
    print_.save(ns.output)
    for name, entry in print_.collections.items():
        print(f"{name}: {entry.count} documents, sha256 {entry.sha256[:16]}...")
    print(f"baseline written to {ns.output}")
    return 0


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
    run.add_argument("--stack", type=Path, default=DEFAULT_STACK)
    run.add_argument("--backend", choices=list(BACKENDS), default="auto")
    run.add_argument(
        "--reports-dir",
        type=Path,
        default=DEFAULT_REPORTS,
        help="root of allure-results/, html/, history/, records/, artifacts/ (default reports/)",
    )
    run.add_argument("--alluredir", type=Path, help="default: REPORTS_DIR/allure-results")
    run.add_argument("--no-html", action="store_true", help="skip the HTML report")
    run.add_argument("--seed-users", type=int)
    run.add_argument(
        "--cadence",
        help="run one cadence's suite from the stack file's `cadences` (monthly, quarterly, "
        "annual); the record carries it and `history` tracks it",
    )
    run.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    run.set_defaults(func=cmd_run)

    rep = sub.add_parser("report", help="regenerate the HTML report from existing results")
    rep.add_argument("--reports-dir", type=Path, default=DEFAULT_REPORTS)
    rep.add_argument("--results", type=Path, help="default: REPORTS_DIR/allure-results")
    rep.add_argument("-o", "--output", type=Path, help="default: REPORTS_DIR/html")
    rep.set_defaults(func=cmd_report)

    hist = sub.add_parser("history", help="the drills' trend across runs, from the drill records")
    hist.add_argument("--reports-dir", type=Path, default=DEFAULT_REPORTS)
    hist.add_argument("--records", type=Path, help="default: REPORTS_DIR/records")
    hist.add_argument("--limit", type=int, help="only the last N drills")
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
    cert.add_argument("--from", dest="from_release", required=True, help="release rolled back")
    cert.add_argument("--to", dest="to_release", required=True, help="release rolled back to")
    cert.add_argument("--stack", type=Path, default=DEFAULT_STACK)
    cert.add_argument("--backend", choices=list(BACKENDS), default="auto")
    cert.add_argument("--reports-dir", type=Path, default=DEFAULT_REPORTS)
    cert.add_argument("--seed-users", type=int)
    cert.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    cert.set_defaults(func=cmd_certify)

    verify = sub.add_parser("verify", help="verify a live environment read-only")
    verify.add_argument("--target", type=Path, required=True)
    verify.add_argument("--alluredir", type=Path)
    verify.add_argument("pytest_args", nargs="*")
    verify.set_defaults(func=cmd_verify)

    up = sub.add_parser("up", help="start the reference stack and write its target file")
    up.add_argument("--stack", type=Path, default=DEFAULT_STACK)
    up.add_argument("--dir", type=Path, default=DEFAULT_UP_DIR)
    up.add_argument("--release")
    up.add_argument("--seed-users", type=int)
    up.add_argument("--timeout", type=float, default=120.0)
    up.set_defaults(func=cmd_up)

    serve = sub.add_parser("serve")  # internal: the supervisor `up` starts; not listed
    serve.add_argument("--stack", type=Path, required=True)
    serve.add_argument("--dir", type=Path, required=True)
    serve.add_argument("--release", default="")
    serve.add_argument("--seed-users", type=int)
    serve.set_defaults(func=cmd_serve)

    down = sub.add_parser("down", help="stop the stack `up` started")
    down.add_argument("--dir", type=Path, default=DEFAULT_UP_DIR)
    down.set_defaults(func=cmd_down)

    fp = sub.add_parser(
        "fingerprint", help="take an integrity baseline of a target before a change"
    )
    fp.add_argument("--target", type=Path, required=True)
    fp.add_argument("-o", "--output", type=Path, default=Path("baseline.json"))
    fp.add_argument("--collections", nargs="*")
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
    doctor.add_argument("--stack", type=Path, default=DEFAULT_STACK)
    doctor.set_defaults(func=cmd_doctor)
    return parser


def main(argv: list[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    try:
        return int(ns.func(ns))
    except SpecError as exc:
        print(f"rollback-drill: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
