"""The verify suite's first five minutes, as a new user meets them: the fingerprint step as
docs/verify.md writes it, `rollback-drill verify` with its table and exit codes, pytest options
passed through, `--target FILE` with a space, a missing `--target`, a broken target file (one
error), a target that is down, and one whose endpoints accept connections but never answer."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from rollback_drill.checks import ALL_CHECKS, BY_NAME
from rollback_drill.plugin.verification import ExitCode, load_for_verify
from rollback_drill.stack import tls
from rollback_drill.stack.local import LocalStack
from rollback_drill.stack.targetfile import write_target_file
from tests.helpers import REFERENCE_ARTIFACT, silent_server
from tests.paths import PROJECT_ROOT

CLI = [sys.executable, "-m", "rollback_drill.cli"]


def _run(argv: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=300, check=False,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


def _pytest(*args: str) -> subprocess.CompletedProcess[str]:
    return _run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args])


@pytest.fixture(scope="module")
def target_file(local_stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Outside the project on purpose: `--target FILE` must still find its configuration."""
    return write_target_file(
        local_stack.target(), tmp_path_factory.mktemp("target"), local_stack.password_file
    )


def test_cli_prints_the_table_and_passes_pytest_options_through(target_file: Path) -> None:
    green = _run([*CLI, "verify", "--target", str(target_file)])
    assert green.returncode == ExitCode.VERIFIED, green.stdout[-3000:]
    rows = [line for line in green.stdout.splitlines() if re.match(r"^[a-z_.-]+\s+PASS\s", line)]
    assert len(rows) == len(ALL_CHECKS)
    assert re.search(r"^check\s+verdict\s+time\s+reason$", green.stdout, re.MULTILINE)
    only_health = _run([*CLI, "verify", "--target", str(target_file), "-q", "-k", "health"])
    assert only_health.returncode == 0, only_health.stdout[-3000:]
    assert f"5 passed, {len(ALL_CHECKS) - 5} deselected" in only_health.stdout
    dry = _run([*CLI, "verify", "--target", str(target_file), "--dry-run", "-x"])
    assert dry.stdout.startswith("pytest ") and dry.stdout.rstrip().endswith("-x")


def test_target_with_a_space_behaves_like_target_equals(target_file: Path) -> None:
    spaced = _pytest("-m", "verify", "--target", str(target_file))
    joined = _pytest("-m", "verify", f"--target={target_file}")
    for run in (spaced, joined):
        assert run.returncode == 0, run.stdout[-3000:]
        assert f"rootdir: {PROJECT_ROOT}" in run.stdout
        assert "configfile: pyproject.toml" in run.stdout
        assert f"{len(ALL_CHECKS)} passed" in run.stdout


def test_verify_without_a_target_is_a_usage_error_but_a_full_run_deselects_it() -> None:
    asked = _pytest("-m", "verify")
    assert asked.returncode == pytest.ExitCode.USAGE_ERROR
    assert "-m verify needs --target FILE" in asked.stderr
    suite_only = _pytest(str(PROJECT_ROOT / "verifications"))
    assert suite_only.returncode == pytest.ExitCode.USAGE_ERROR
    mixed = _pytest(str(PROJECT_ROOT / "verifications"), "tests/test_verify_units.py", "-q")
    assert mixed.returncode == 0, mixed.stdout[-2000:]
    assert f"{len(ALL_CHECKS)} deselected" in mixed.stdout and " passed" in mixed.stdout


def test_a_frontend_served_over_tls_alone_has_its_certificate_judged(
    target_file: Path, tmp_path: Path
) -> None:
    """Production frontends are often HTTPS alone (port 80 redirects): the target names one
    https `frontend` and no `frontend_tls`. Its certificate is judged (it once went "not
    verified", exit 6, on every run) and its one route sampled once, as "nginx https"."""
    data = yaml.safe_load(target_file.read_text())
    data["services"]["frontend"] = data["services"].pop("frontend_tls")
    https_only = target_file.parent / "https-only.yaml"  # its relative paths stay right
    https_only.write_text(yaml.safe_dump(data))
    run = _run([*CLI, "verify", "--target", str(https_only)])
    assert run.returncode == ExitCode.VERIFIED, run.stdout[-3000:]
    rows = {line.split()[0]: line for line in run.stdout.splitlines() if line.strip()}
    assert "PASS" in rows["tls.certificate"] and "verified, TLSv1.3" in rows["tls.certificate"]
    assert "59 requests, 1 routes" in rows["flow.landing"], rows["flow.landing"]

    target = load_for_verify(https_only)
    assert target.frontend_routes() == [("nginx https", target.frontend_url)]
    rogue = tls.issue(tmp_path / "rogue", "safepsy.local")  # another CA than nginx's
    data["tls"]["ca_file"] = str(rogue.ca_file)
    https_only.write_text(yaml.safe_dump(data))
    judged = BY_NAME["tls.certificate"].run(load_for_verify(https_only))
    assert not judged.ok and "chain does not verify" in judged.summary, judged.summary


def test_a_broken_target_file_is_one_clear_error(target_file: Path, tmp_path: Path) -> None:
    data = yaml.safe_load(target_file.read_text())
    data["services"]["frontend_tls"] = "http://localhost:443"  # TLS endpoint without https
    data["deadline_s"] = -1
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(data))
    for run in (
        _run([*CLI, "verify", "--target", str(broken)]),
        _pytest("-m", "verify", "--target", str(broken)),
    ):
        out = run.stdout + run.stderr
        assert run.returncode == ExitCode.TARGET_FILE_ERROR, out[-2000:]
        assert "Traceback" not in out
        assert out.count("services.frontend_tls") == 1, out
        assert "frontend_tls" in out and "https://" in out and "deadline_s" in out
        assert str(broken) in out


def test_verify_after_down_says_the_stack_is_down(tmp_path: Path) -> None:
    up = _run([*CLI, "up", "--dir", str(tmp_path), "--seed-users", "20"])
    assert up.returncode == 0, up.stderr
    target = json.loads((tmp_path / "state.json").read_text())["target"]
    assert _run([*CLI, "down", "--dir", str(tmp_path)]).returncode == 0
    run = _run([*CLI, "verify", "--target", target])
    out = run.stdout + run.stderr
    assert run.returncode == ExitCode.UNREACHABLE, out[-2000:]
    assert "the target is down" in out and "connection refused" in out
    assert "ca_file" not in out and "password_file" not in out and "Traceback" not in out


@pytest.fixture
def silent_target(target_file: Path, tmp_path: Path) -> Iterator[Path]:
    with silent_server() as port:
        data = yaml.safe_load(target_file.read_text())
        silent = f"http://127.0.0.1:{port}"
        data["services"].update({"backend": silent, "ai-chatbot": silent, "frontend": silent})
        data["thresholds"] = {"request_timeout_s": 1.0}
        data["deadline_s"] = 5.0
        path = target_file.parent / f"silent-{tmp_path.name}.yaml"
        path.write_text(yaml.safe_dump(data))
        yield path


def test_endpoints_that_never_answer_are_judged_within_the_deadline(silent_target: Path) -> None:
    started = time.monotonic()
    run = _run([*CLI, "verify", "--target", str(silent_target)])
    elapsed = time.monotonic() - started
    assert run.returncode == ExitCode.NOT_RECOVERED, run.stdout[-3000:]
    assert elapsed < 5.0 + 6, elapsed  # the deadline plus start-up, not a timeout per request
    assert re.search(r"^health\.backend\s+FAIL .*timed out", run.stdout, re.MULTILINE)


def _documented_target() -> str:
    """The target file docs/verify.md shows (README.md links to it)."""
    doc = (PROJECT_ROOT / "docs" / "verify.md").read_text()
    section = doc[doc.index("## The target file") :]
    return section[
        section.index("```yaml\n") + 8 : section.index("```\n", section.index("```yaml"))
    ]


def test_documented_fingerprint_step_works_as_written(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    """docs/verify.md's target file, pointed at a real stack through its environment variables,
    and its `fingerprint` command - before any baseline exists."""
    (tmp_path / "prod.yaml").write_text(_documented_target())
    # the documented target names its contract build beside it, as a user's checkout has it
    build = tmp_path / "contracts" / "build" / "1.4.0"
    build.mkdir(parents=True)
    shutil.copy(REFERENCE_ARTIFACT, build / "DIDRegistry.json")
    env = {
        "SAFEPSY_MONGODB_URI": local_stack.mongodb_uri,
        "SAFEPSY_REDIS_URL": local_stack.redis_url,
    }
    argv = [*CLI, "fingerprint", "--target", "prod.yaml", "-o", "baseline.json"]
    run = subprocess.run(
        argv, capture_output=True, text=True, cwd=tmp_path, env={**os.environ, **env}
    )
    assert run.returncode == 0, run.stderr
    assert "users:" in run.stdout and "email_unique" in run.stdout
    assert (tmp_path / "baseline.json").exists()
    empty = subprocess.run(
        [*argv, "--collections", "users", "no_such_collection"],
        capture_output=True, text=True, cwd=tmp_path, env={**os.environ, **env},
    )  # fmt: skip
    assert empty.returncode == ExitCode.TARGET_FILE_ERROR
    assert "refusing a baseline of no_such_collection (missing)" in empty.stderr
    gone = subprocess.run(
        argv, capture_output=True, text=True, cwd=tmp_path,
        env={**os.environ, "SAFEPSY_MONGODB_URI": "mongodb://127.0.0.1:1/?connectTimeoutMS=500"},
    )  # fmt: skip
    assert gone.returncode == ExitCode.UNREACHABLE and "Traceback" not in gone.stderr
    assert "cannot read MongoDB" in gone.stderr


def test_performance_baseline_saved_when_green_and_used_by_the_next_run(
    target_file: Path, tmp_path: Path
) -> None:
    saved = target_file.parent / f"perf-{tmp_path.name}.json"
    run = _run([*CLI, "verify", "--target", str(target_file), "--save-performance", str(saved)])
    assert run.returncode == 0, run.stdout[-3000:]
    flows = json.loads(saved.read_text())["flows"]
    assert set(flows) == {"landing", "login", "did", "chat"}
    assert all(len(v) >= 2 for f in flows.values() for v in f["client_s"].values())
    data = yaml.safe_load(target_file.read_text())
    data["performance_baseline"] = saved.name
    with_baseline = target_file.parent / f"with-perf-{tmp_path.name}.yaml"
    with_baseline.write_text(yaml.safe_dump(data))
    again = _run([*CLI, "verify", "--target", str(with_baseline), "-k", "landing", "-rA"])
    # judged against it: green ("vs baseline x1.02 ..."), or - with the machine too busy to
    # judge while CI's other worker runs - "not verified" naming the same ratio "of the baseline"
    judged = "vs baseline x" in again.stdout or "of the baseline" in again.stdout
    assert judged and "interval" in again.stdout, again.stdout[-2000:]
    broken = target_file.parent / f"perf-broken-{tmp_path.name}.json"
    broken.write_text('{"format": "rollback-drill/performance/1", "p95_s": {"login": 0.1}}')
    data["performance_baseline"] = broken.name
    with_baseline.write_text(yaml.safe_dump(data))
    refused = _run([*CLI, "verify", "--target", str(with_baseline)])
    assert refused.returncode == ExitCode.TARGET_FILE_ERROR
    assert "performance_baseline" in refused.stdout + refused.stderr
    assert "--save-performance" in refused.stderr  # how to write one of the new format
