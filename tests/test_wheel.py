"""The package as a user who installs it meets it: the wheel is built from this tree, installed
with its `embedded` extra into a fresh venv (no --system-site-packages, nothing of this
checkout on its path), and every command runs from an empty folder - `up`, `doctor`, the live
verify suite through pytest (0 against the healthy stack, 1 once a service is stopped),
`verify`, `assess`, `down`, a drill through `run`, and a team's own drills folder beside the
shipped ones. Nothing may be written into the installed package.

Slow by nature (a wheel build, a venv, an install, two stacks): one venv per session, and
each step's time is printed (`-rP`). Marked `wheel` so a run can choose or skip it.
Nothing is downloaded: scripts/setup.sh keeps every distribution `.[dev,embedded]` needs, and
the build backend, in the wheelhouse .venv/wheelhouse, and both pip commands here run with
`--no-index --find-links` it and no pip configuration (no index, no /opt/wheels). The wheel is
still built from a clean copy of the tree in pip's isolated build environment (setuptools from
the wheelhouse), and the install still resolves the wheel's own metadata: it installs only
what the wheel asks for, a requirement the wheelhouse lacks fails the install, and one the
metadata forgets is absent from the venv, so the commands below fail. Measured on a shared
2-core machine at load 9-30 (a full suite running beside it): building the wheel 21 s, the
venv 26 s, installing it with its dependencies from the wheelhouse 142 s (was 7 min from
the indexes); up 19 s, doctor 2 s, pytest -m verify 6 s (healthy) and 7 s (backend stopped),
verify 3 s, assess 3 s, down 6 s, run --drills DIR --collect-only 14 s, run -- -k emergency
159 s (two drills; one since); 7 min 11 s in all.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

from rollback_drill.process.wait import Wait
from tests.paths import PROJECT_ROOT

# builds and installs the wheel, then brings up stacks and runs a drill from it: 2-3 minutes,
# so not in the fast tier (`run-tests.sh --fast`); the whole suite and CI run it
pytestmark = [pytest.mark.wheel, pytest.mark.slow]
TEAM_DRILL = '''"""A team's own drill: collected beside the shipped ones by `run --drills DIR`."""

import pytest

from rollback_drill import DeployRelease, Drill, DrillRunner, emergency

pytestmark = [pytest.mark.drill, pytest.mark.emergency]

OURS = Drill(
    name="team: our own outage",
    release="1.5.0",
    scenario=DeployRelease(),
    procedure=emergency.PROCEDURE,
    severity="critical",
)


@pytest.mark.parametrize("drill", [OURS], ids=["ours"])
def test_team_drill(drill: Drill, drill_runner: DrillRunner) -> None:
    assert drill_runner(drill).passed
'''


WHEELHOUSE = PROJECT_ROOT / ".venv" / "wheelhouse"


def _offline_pip(wheelhouse: Path) -> tuple[list[str], dict[str, str]]:
    """pip's options and environment to take distributions from `wheelhouse` alone: no
    configuration file (these machines' adds indexes and find-links) and no PIP_* variable."""
    if not (wheelhouse / ".stamp").is_file():
        pytest.fail(f"no wheelhouse at {wheelhouse}: run ./scripts/setup.sh")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull  # pip then reads no configuration file at all
    options = ["--no-index", "--find-links", str(wheelhouse), "--disable-pip-version-check"]
    return options, env


@dataclass
class Installed:
    """The wheel and the venv it is installed in; `timings` collects each step's seconds."""

    wheel: Path
    venv: Path
    timings: dict[str, float] = field(default_factory=dict)

    def bin(self, name: str) -> str:
        return str(self.venv / "bin" / name)

    def env(self) -> dict[str, str]:
        """The user's environment: the venv and the Node tools (the user's `npm install`) on
        PATH; nothing of this checkout's venv or source on any path."""
        keep = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
        ours = str(PROJECT_ROOT / ".venv" / "bin")
        path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and p != ours]
        node = str(PROJECT_ROOT / "node_modules" / ".bin")
        keep["PATH"] = os.pathsep.join([str(self.venv / "bin"), node, *path])
        keep["ROLLBACK_DRILL_NO_SWEEP"] = "1"  # never touch what this suite's other tests run
        return keep

    def run(
        self, name: str, argv: list[str], cwd: Path, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        started = time.monotonic()
        done = subprocess.run(
            argv, cwd=cwd, env=self.env(), capture_output=True, text=True, timeout=timeout,
            check=False,
        )  # fmt: skip
        self.timings[name] = time.monotonic() - started
        return done


def _source_copy(dest: Path) -> Path:
    """This tree's files as git sees them (committed or not, ignored ones left out): building
    in a copy leaves no build/ or egg-info in the checkout and nothing untracked in the wheel."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=PROJECT_ROOT, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, listed):
        src = PROJECT_ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    root = tmp_path_factory.mktemp("wheel")
    timings: dict[str, float] = {}
    started = time.monotonic()
    source = _source_copy(root / "src")
    wheels = root / "dist"
    offline, pip_env = _offline_pip(WHEELHOUSE)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", *offline, ".", "-w",
         str(wheels)],
        cwd=source, env=pip_env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (wheel,) = wheels.glob("rollback_drill-*.whl")
    timings["build the wheel"] = time.monotonic() - started
    started = time.monotonic()
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    timings["venv"] = time.monotonic() - started
    started = time.monotonic()
    done = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", *offline, f"{wheel}[embedded]"],
        env=pip_env, capture_output=True, text=True, timeout=1200, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    timings["pip install wheel[embedded] --no-index"] = time.monotonic() - started
    try:
        yield Installed(wheel, venv, timings)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_the_wheel_carries_what_its_commands_need(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as wheel:
        names = set(wheel.namelist())
        (metadata,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        requires = [
            line.split(":", 1)[1].strip()
            for line in wheel.read(metadata).decode().splitlines()
            if line.startswith("Requires-Dist:")
        ]
    shipped = "rollback_drill/shipped/"
    for wanted in [
        "safepsy/stack.yaml",
        "safepsy/releases/1.5.0.yaml",
        "safepsy/releases/patches/1.10.0-backend-email-migration.patch",
        "safepsy/app/safepsy_app/backend.py",
        "safepsy/contracts/build/1.4.0/DIDRegistry.json",
        "safepsy/nginx/nginx.conf.template",
        "safepsy/frontend/index.html",
        "safepsy/docker/python-app.Dockerfile",
        "safepsy/docker-compose.yml",
        "safepsy/ROLLBACK_RUNBOOK.md",
        "drills/test_emergency.py",
        "verifications/test_verify.py",
        "load/locustfile.py",
    ]:
        assert shipped + wanted in names, wanted
    assert "rollback_drill/evidence/allurerc.mjs" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/", "reports/"))]
    secantus = [r for r in requires if r.lower().startswith("secantusdb")]
    assert secantus and all('extra == "embedded"' in r for r in secantus), requires
    # the engine's chain work goes through web3 (chain/evm.py): a runtime requirement
    assert [r for r in requires if r.lower().startswith("web3") and "extra" not in r], requires


def _backend_of(work: Path) -> psutil.Process:
    """The backend process of the stack `up` runs in `work` (its cwd lies under it)."""
    for candidate in psutil.process_iter(["cmdline", "cwd"]):
        cmdline = candidate.info["cmdline"] or []
        if "safepsy_app.backend" in cmdline and str(candidate.info["cwd"] or "").startswith(
            str(work)
        ):
            return candidate
    raise AssertionError(f"no backend process of the stack in {work}")


def _ended(process: psutil.Process) -> bool:
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_every_command_works_from_an_empty_folder(installed: Installed, tmp_path: Path) -> None:
    work = tmp_path / "empty"
    work.mkdir()
    cli, pytest_bin = installed.bin("rollback-drill"), installed.bin("pytest")
    target = str(work / ".rollback-drill" / "target.yaml")
    try:
        up = installed.run("up", [cli, "up", "--seed-users", "20"], work)
        assert up.returncode == 0, up.stdout + up.stderr
        doctor = installed.run("doctor", [cli, "doctor"], work)
        assert doctor.returncode == 0, doctor.stdout + doctor.stderr
        assert "ok      stores.mongodb.integrity_collections" in doctor.stdout

        verify = installed.run(
            "pytest -m verify (healthy)",
            [pytest_bin, "-m", "verify", "--target", target, "-p", "no:cacheprovider", "-q"],
            work,
        )
        assert verify.returncode == 0, verify.stdout[-3000:] + verify.stderr[-2000:]
        assert " passed" in verify.stdout and "no tests ran" not in verify.stdout
        direct = installed.run("verify", [cli, "verify", "--target", target], work)
        assert direct.returncode == 0, direct.stdout[-3000:] + direct.stderr[-2000:]
        assess = installed.run("assess", [cli, "assess", "--target", target], work)
        assert assess.returncode == 0, assess.stdout[-3000:] + assess.stderr[-2000:]

        backend = _backend_of(work)
        backend.send_signal(signal.SIGKILL)  # not our child: gone or a zombie until reaped
        Wait("the backend killed", 10).until(lambda: _ended(backend))
        broken = installed.run(
            "pytest -m verify (backend stopped)",
            [pytest_bin, "-m", "verify", "--target", target, "-p", "no:cacheprovider", "-q"],
            work,
        )
        assert broken.returncode == 1, broken.stdout[-3000:] + broken.stderr[-2000:]
        assert "health.backend" in broken.stdout
    finally:
        down = installed.run("down", [cli, "down"], work)
    assert down.returncode == 0, down.stdout + down.stderr

    team = work / "team_drills"
    team.mkdir()
    (team / "test_team.py").write_text(TEAM_DRILL)
    listed = installed.run(
        "run --drills DIR --collect-only",
        [cli, "run", "--no-html", "--drills", str(team), "--", "--collect-only", "-q"],
        work,
    )
    assert listed.returncode == 0, listed.stdout[-3000:] + listed.stderr[-2000:]
    assert "test_team.py::test_team_drill[" in listed.stdout
    assert "test_emergency.py::test_emergency_rollback[" in listed.stdout

    one = "test_emergency_rollback and service_down"  # one shipped drill: the package runs it
    drill = installed.run(f"run -- -k {one!r}", [cli, "run", "--backend", "local", "--",
                                                 "-k", one], work)  # fmt: skip
    assert drill.returncode == 0, drill.stdout[-4000:] + drill.stderr[-2000:]
    assert "1 passed" in drill.stdout
    assert list((work / "reports" / "records").glob("*.json"))
    assert (work / "reports" / "html" / "index.html").is_file()

    package = installed.venv / "lib"
    written = [p for p in package.rglob("*") if p.name in ("reports", ".rollback-drill")]
    assert written == [], "the tool wrote into the installed package"
    print("\n".join(f"{s:7.1f} s  {name}" for name, s in installed.timings.items()))
