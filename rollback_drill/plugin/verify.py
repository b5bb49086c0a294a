"""The verify suite's half of the pytest plugin (loaded by `rollback_drill.plugin.core`).

- `--target FILE` and `--target=FILE` behave the same (pytest reads a plugin option's value
  as a test path when it picks the rootdir; the configuration is re-rooted here).
- `-m verify` without `--target` is a usage error; a full test run deselects the verify tests
  instead of counting them as passes.
- The target file is loaded once, at configuration: a broken file is one error, not one per
  check. A target that is down says so once, with its own exit status.
- The checks run all at once under the target's deadline: for the whole suite they start as
  soon as the command line is known (while pytest still collects; see
  verification.EarlyRun), else the first time a verify test asks. Each test then reports its
  check. A check that could not look is "not verified" in the summary and in the exit status,
  never a pass.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from rollback_drill.process.places import shipped

if TYPE_CHECKING:
    from rollback_drill.checks.result import Outcome
    from rollback_drill.files.targetspec import TargetSpec
    from rollback_drill.stack.target import Target

spec_key = pytest.StashKey[tuple[Path, "TargetSpec"]]()
outcomes_key = pytest.StashKey[dict[str, "Outcome"]]()
target_key = pytest.StashKey["Target"]()
VERIFY_DIR = "verifications"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("rollback-drill")
    group.addoption(
        "--target", default=None, help="target file of a live environment for -m verify"
    )
    group.addoption(
        "--save-performance",
        default=None,
        metavar="FILE",
        help="after a green verify run, write each flow's p95 to FILE (a performance baseline "
        "for the target's performance_baseline)",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(
    early_config: pytest.Config, parser: pytest.Parser, args: list[str]
) -> None:
    _reroot(early_config, parser, args)
    _default_to_the_suite(early_config, args)
    if _whole_suite(early_config, parser, args):
        from rollback_drill.plugin.verification import start_early

        start_early(Path(early_config.known_args_namespace.target))


def _whole_suite(config: pytest.Config, parser: pytest.Parser, args: list[str]) -> bool:
    """Whether this run asks for every check with a command line pytest will accept (so they
    can start before collection ends, and never for a run about to end in a usage error)."""
    ns = config.known_args_namespace
    if not getattr(ns, "target", None) or getattr(ns, "compose_file", None) or ns.help:
        return False
    if parser.parse_known_and_unknown_args(args)[1]:
        return False
    paths = [str(p) for p in ns.file_or_dir]
    return not (
        ns.keyword
        or ns.deselect
        or any("::" in p for p in paths)
        or (ns.markexpr or "verify").strip() != "verify"
    )


def _default_to_the_suite(config: pytest.Config, args: list[str]) -> None:
    """With --target and no path, run the verify suite only: nothing else may run against a
    target, so nothing else is imported (tests/conftest.py alone costs 0.2 s). The suite is
    this project's verifications/ (of testpaths) when run from its root, else the one the
    package ships - so `pytest -m verify --target FILE` works from any folder (pytest would
    otherwise collect the working folder and find nothing: "no tests ran", exit 5)."""
    ns = config.known_args_namespace
    if not getattr(ns, "target", None) or ns.file_or_dir:
        return
    suite = str(shipped("verifications"))
    if config.invocation_params.dir == config.rootpath:
        suites = [p for p in config.getini("testpaths") if Path(p).name == VERIFY_DIR]
        if suites and (config.rootpath / suites[0]).is_dir():
            suite = suites[0]
    args.append(suite)
    ns.file_or_dir = [suite]


def _reroot(config: pytest.Config, parser: pytest.Parser, args: list[str]) -> None:
    """Redo pytest's rootdir and ini-file choice now that `--target` is a known option.

    pytest chooses them before plugins register their options, so in `--target FILE` it takes
    FILE for a test path and roots the run at FILE's folder, without the project's
    configuration. Touches pytest internals (pinned <10); tests/test_verify_cli.py guards it.
    """
    ns = config.known_args_namespace
    if not getattr(ns, "target", None) or ns.inifilename or ns.rootdir:
        return
    from _pytest.config.findpaths import determine_setup

    rootpath, inipath, inicfg, _ = determine_setup(
        inifile=None,
        override_ini=ns.override_ini,
        args=ns.file_or_dir,
        rootdir_cmd_arg=None,
        invocation_dir=config.invocation_params.dir,
    )
    if inipath == config.inipath:
        return
    try:
        wrong = list(config.getini("addopts"))
        if wrong and args[: len(wrong)] == wrong:
            del args[: len(wrong)]
        config._rootpath, config._inipath, config._inicfg = rootpath, inipath, inicfg
        config._inicache.clear()
        parser.extra_info["rootdir"] = str(rootpath)
        parser.extra_info["inifile"] = str(inipath)
        addopts = config._validate_args(config.getini("addopts"), "via addopts config")
        args[:] = addopts + args
        # `-p no:NAME` there came too late to stop the load: unregister those plugins now
        config.pluginmanager.consider_preparse(addopts, exclude_only=True)
        config.known_args_namespace = parser.parse_known_args(
            args, namespace=copy.copy(config.option)
        )
        config._configure_python_path()
        if config.known_args_namespace.confcutdir is None:
            config.known_args_namespace.confcutdir = str((inipath or rootpath).parent)
    except AttributeError as exc:  # pytest changed its internals
        raise pytest.UsageError(
            f"write --target=FILE (with '='): this pytest cannot re-root a separate value ({exc})"
        ) from None


def _selects_verify(config: pytest.Config) -> bool:
    """Whether `-m` asks for the verify tests (`-m verify`, `-m "verify and not x"`...)."""
    markexpr = config.option.markexpr or ""
    if "verify" not in markexpr:
        return False
    from _pytest.mark.expression import Expression

    def only_verify(name: str, /, **kwargs: str | int | bool | None) -> bool:
        return name == "verify"

    def no_marker(name: str, /, **kwargs: str | int | bool | None) -> bool:
        return False

    expr = Expression.compile(markexpr)
    return expr.evaluate(only_verify) and not expr.evaluate(no_marker)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    from rollback_drill.files.targetspec import load_target
    from rollback_drill.process.errors import SpecError

    target = config.getoption("--target")
    if not target:
        if _selects_verify(config):
            raise pytest.UsageError(
                "-m verify needs --target FILE: a target file describing the environment to "
                "verify (`rollback-drill up` writes one for the reference stack)"
            )
        return
    path = Path(target)
    _no_collection_at_exit(config)
    try:
        config.stash[spec_key] = (path, load_target(path))
    except SpecError as exc:
        raise pytest.UsageError(str(exc)) from None
    except (ValueError, OSError) as exc:  # e.g. not UTF-8: still one line, not a traceback
        raise pytest.UsageError(f"{path}: not a readable target file ({exc})") from None


def _no_collection_at_exit(config: pytest.Config) -> None:
    """A verify run skips the full garbage collections pytest runs at its end to report
    exceptions raised in finalizers (`unraisableexception`): with pymongo's and pydantic's
    heaps they cost 0.1 s of a run whose budget is half the runbook block's 1.6 s, and a verify
    run's checks end in daemon threads no finalizer report would reach. Its stash key is
    pytest's own way to set the number of collections (pinned <10; without the key, as before).
    """
    try:
        from _pytest.unraisableexception import gc_collect_iterations_key
    except ImportError:  # pytest moved it: collect as pytest does
        return
    config.stash[gc_collect_iterations_key] = 0


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--target"):
        return
    verify = [i for i in items if i.get_closest_marker("verify") is not None]
    if not verify:
        return
    if len(verify) == len(items):
        raise pytest.UsageError("the verify tests need --target FILE (see `rollback-drill up`)")
    config.hook.pytest_deselected(items=verify)
    items[:] = [i for i in items if i.get_closest_marker("verify") is None]


def pytest_report_header(config: pytest.Config) -> list[str]:
    if spec_key not in config.stash:
        return []
    path, spec = config.stash[spec_key]
    writes = "writes forbidden (read_only)" if spec.read_only else "marked probe writes allowed"
    return [f"rollback-drill: verify target {path} ({writes})"]


def _exit(message: str, code: int) -> None:
    pytest.exit(message, returncode=code)


@pytest.fixture(scope="session")
def verify_target(pytestconfig: pytest.Config, compose_services: object | None) -> Target:
    """The target, resolved once (after a --compose-file project is up)."""
    from rollback_drill.plugin.verification import ExitCode, early_run, load_for_verify
    from rollback_drill.process.errors import SpecError, TargetUnreachable

    if spec_key not in pytestconfig.stash:
        pytest.skip("the verify suite needs --target FILE (see `rollback-drill up`)")
    if target_key not in pytestconfig.stash:
        path, spec = pytestconfig.stash[spec_key]
        early = early_run(path)
        if early is not None:
            pytestconfig.stash[target_key] = early.target
            return early.target
        try:
            pytestconfig.stash[target_key] = load_for_verify(path, spec)
        except TargetUnreachable as exc:
            _exit(str(exc), ExitCode.UNREACHABLE)
        except SpecError as exc:
            _exit(str(exc), ExitCode.TARGET_FILE_ERROR)
    return pytestconfig.stash[target_key]


@pytest.fixture(scope="session")
def verify_outcomes(request: pytest.FixtureRequest, verify_target: Target) -> dict[str, Outcome]:
    """Every selected check's outcome, asked all at once under the target's deadline."""
    from rollback_drill.checks import BY_NAME, run_checks_concurrently
    from rollback_drill.plugin.verification import early_run

    wanted = []
    for item in request.session.items:
        callspec = getattr(item, "callspec", None)
        check = callspec.params.get("check") if callspec is not None else None
        if check is not None and check.name in BY_NAME and check not in wanted:
            wanted.append(check)
    early = early_run(Path(request.config.getoption("--target")))
    if early is not None and early.target is verify_target and set(wanted) <= set(early.checks):
        outcomes = [o for o in early.outcomes() if o.check in wanted]
    else:
        outcomes = run_checks_concurrently(wanted, verify_target)
    found = {o.check.name: o for o in outcomes}
    request.config.stash[outcomes_key] = found
    return found


def attach_evidence(config: pytest.Config, outcome: Outcome) -> None:
    """Label and attach to Allure, only when Allure results are being written."""
    if not config.pluginmanager.hasplugin("allure_pytest") or not config.getoption(
        "--alluredir", None
    ):
        return
    from rollback_drill.evidence import report

    report.label_verification(outcome.check.category, outcome.check.doc)
    if outcome.result is not None:
        report.attach_json(f"{outcome.check.name} evidence", outcome.result.evidence)


def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config) -> Any:
    if report.skipped and "verify" in report.keywords and config.getoption("--target"):
        return "not verified", "N", ("NOT VERIFIED", {"yellow": True})
    return None


def _ran(config: pytest.Config) -> list[Outcome]:
    return list(config.stash.get(outcomes_key, {}).values())


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The verify run's own exit status (see verification.ExitCode), and the performance
    baseline when asked for."""
    from rollback_drill.plugin.verification import ExitCode, save_performance_baseline, status

    outcomes = _ran(session.config)
    if not outcomes or int(exitstatus) not in (0, 1):
        return
    code = status(outcomes)
    if code is ExitCode.NOT_VERIFIED and int(exitstatus) == 0:
        session.exitstatus = int(code)
    save = session.config.getoption("--save-performance")
    if save and code is ExitCode.VERIFIED:
        save_performance_baseline(Path(save), outcomes, str(session.config.getoption("--target")))


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config
) -> None:
    from rollback_drill.plugin.verification import table, verdict, writes

    outcomes = _ran(config)
    if not outcomes:
        return
    terminalreporter.section("rollback-drill verify")
    width = terminalreporter._tw.fullwidth
    for line in table(outcomes, width):
        terminalreporter.write_line(line)
    made = writes(outcomes)
    if made:
        terminalreporter.write_line("writes made by this run:")
        for line in made:
            terminalreporter.write_line(f"  {line}")
    save = config.getoption("--save-performance")
    if save:
        saved = Path(save).exists() and all(o.state == "passed" for o in outcomes)
        terminalreporter.write_line(
            f"performance baseline: {'written to ' + save if saved else 'not written (not green)'}"
        )
    stash = config.stash.get(target_key, None)
    origin = stash.origin() if stash is not None else str(config.getoption("--target"))
    terminalreporter.write_line(verdict(outcomes, origin), bold=True)
