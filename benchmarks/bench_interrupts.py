"""Benchmark: interrupted emergency drills leave nothing behind and signal nobody else.

Runs the emergency drill N times as a user would (`pytest drills -m emergency`), interrupting
most runs with SIGINT, SIGTERM or SIGKILL at a moment it watches for - during seeding (the
seed process is up), the deploy (the configuration backup the deploy takes appears), the
restore (the emergency backup appears), or after a random delay - then one normal run, whose
start sweeps what SIGKILLed runs left. Beside the runs stand decoy processes the harness did
not start (one plain, one working inside the harness's temp folder, and one per run in the
run's own stack folder, like a shell cd'ed there to read logs); each writes down every
signal it receives.

While each run lives, its processes (by owner mark and group record), their listening ports,
its temp folders and its containers are sampled; afterwards it counts what is still there.
Prints the counts; asserts nothing. Run:
  .venv/bin/python benchmarks/bench_interrupts.py [--runs 20] [--backend local|docker]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from rollback_drill.process import ownership, proc, procfs
from rollback_drill.process.procfs import ProcessIdentity

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.decoy import Decoy  # the project root is on the path only now

PROJECT_ROOT = Path(__file__).resolve().parents[1]  # this checkout

SIGNALS = [signal.SIGINT, signal.SIGTERM, signal.SIGKILL]
MOMENTS = ["seeding", "deploy", "restore", "random"]


@dataclass
class Seen:
    """What one run was seen to own while it lived."""

    processes: set[ProcessIdentity] = field(default_factory=set)
    ports: set[int] = field(default_factory=set)
    temp_dirs: set[Path] = field(default_factory=set)
    containers: set[str] = field(default_factory=set)
    docker_ports: set[int] = field(default_factory=set)  # held by docker-proxy, not by the run


@dataclass
class Left:
    processes: list[str] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)
    temp_dirs: list[Path] = field(default_factory=list)
    containers: list[str] = field(default_factory=list)
    half_written: list[Path] = field(default_factory=list)

    def counts(self) -> str:
        return (
            f"processes {len(self.processes)}, ports {len(self.ports)}, "
            f"containers {len(self.containers)}, temp folders {len(self.temp_dirs)}, "
            f"half-written artifact folders {len(self.half_written)}"
        )


def listening_ports(pids: set[int]) -> set[int]:
    """TCP ports in LISTEN state whose socket belongs to one of `pids`."""
    inodes: dict[str, int] = {}
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if cols[3] == "0A":
                inodes[cols[9]] = int(cols[1].rsplit(":", 1)[1], 16)
    ports: set[int] = set()
    for pid in pids:
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink(fd)
            except OSError:
                continue
            if link.startswith("socket:["):
                port = inodes.get(link[8:-1])
                if port is not None:
                    ports.add(port)
    return ports


def containers_of(owner_pid: int) -> tuple[set[str], set[int]]:
    """Names and published host ports of the containers a run labelled as its own."""
    done = subprocess.run(
        ["docker", "ps", "-a", "--filter", f"label=rollback-drill.owner-pid={owner_pid}",
         "--format", "{{.Names}}\t{{.Ports}}"],
        capture_output=True, text=True, check=False, timeout=30,
    )  # fmt: skip
    names: set[str] = set()
    ports: set[int] = set()
    for line in done.stdout.splitlines():
        name, _, published = line.partition("\t")
        names.add(name)
        ports.update(int(p) for p in re.findall(r"127\.0\.0\.1:(\d+)->", published))
    return names, ports


def sample(run: ProcessIdentity, seen: Seen, stop: threading.Event, docker: bool) -> None:
    last_docker = 0.0
    while not stop.is_set():
        infos = ownership.Ownership().processes_of(run)
        seen.processes.update(p.identity for p in infos)
        seen.ports.update(listening_ports({p.pid for p in infos}))
        seen.temp_dirs.update(ownership.TEMP_ROOT.glob(f"{run.pid}-*"))
        if docker and time.monotonic() - last_docker > 1.0:
            names, ports = containers_of(run.pid)
            seen.containers.update(names)
            seen.docker_ports.update(ports)
            last_docker = time.monotonic()
        stop.wait(0.2)


def _reached(
    moment: str, run: ProcessIdentity, folders: list[Path], started: float, at: float
) -> bool:
    if moment == "random":
        return time.monotonic() - started >= at
    if moment == "seeding":
        return any(
            "safepsy_app.seed" in " ".join(procfs.cmdline(p.pid))
            for p in ownership.Ownership().processes_of(run)
        )
    marker = "config-backups" if moment == "deploy" else "emergency-backup-*"
    return any(any(folder.glob(marker)) for folder in folders)


def leftovers(run: ProcessIdentity, seen: Seen, artifacts: set[Path], docker: bool) -> Left:
    left = Left()
    ours = {p.identity for p in ownership.Ownership().processes_of(run)}
    for identity in sorted(seen.processes | ours):
        if identity.alive():
            left.processes.append(f"{identity.pid} {' '.join(procfs.cmdline(identity.pid))}")
    holders = {p.pid for p in procfs.all_processes()}
    open_now = listening_ports(holders)
    left.ports = sorted(p for p in seen.ports if p in open_now and _held_by(p, seen))
    left.ports += sorted(p for p in seen.docker_ports if proc.port_open(p))  # maybe reused
    left.temp_dirs = sorted(d for d in seen.temp_dirs if d.exists())
    left.temp_dirs += sorted(set(ownership.TEMP_ROOT.glob(f"{run.pid}-*")) - set(left.temp_dirs))
    if docker:
        left.containers = sorted(containers_of(run.pid)[0])
    left.half_written = sorted(d for d in artifacts if not (d / "drill.json").exists())
    return left


def _held_by(port: int, seen: Seen) -> bool:
    """The port is open and held by a process of the run (not reused by someone else)."""
    alive = {i.pid for i in seen.processes if i.alive()}
    return port in listening_ports(alive)


def _stop(child: subprocess.Popen[bytes]) -> None:
    """The benchmark itself was interrupted mid-run: let the drill tear down, then go."""
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(timeout=60)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _default_sigint() -> None:
    """A shell starts background jobs with SIGINT ignored, and Python keeps an ignored SIGINT:
    give the drill the Ctrl-C a user's terminal would."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _record_kind(folder: Path) -> str:
    record = folder / "drill.json"
    if not record.exists():
        return "none"
    return "interrupted" if json.loads(record.read_text()).get("interrupted") else "drill"


def one_run(
    number: int, sig: signal.Signals | None, moment: str, args: argparse.Namespace, work: Path
) -> tuple[dict[str, object], ProcessIdentity, Seen, set[Path]]:
    artifacts = work / "artifacts"  # one root for all runs, as reports/artifacts is
    artifacts.mkdir(exist_ok=True)
    before = set(artifacts.iterdir())
    log = work / f"run-{number:02d}.log"
    argv = [str(PROJECT_ROOT / ".venv/bin/pytest"), str(PROJECT_ROOT / "drills"), "-m",
            "emergency", "--stack-backend", args.backend, "-p", "no:cacheprovider", "-q",
            "--seed-users", str(args.seed_users), "--drill-artifacts", str(artifacts),
            "--drill-records", str(work / "records")]  # fmt: skip
    with log.open("wb") as out:
        child = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=PROJECT_ROOT,
            start_new_session=True,
            preexec_fn=_default_sigint,
        )
    run = ProcessIdentity.of(child.pid) or ProcessIdentity(child.pid, 0)
    seen, stop = Seen(), threading.Event()
    in_stack: list[Decoy] = []
    sampler = threading.Thread(
        target=sample, args=(run, seen, stop, args.backend == "docker"), daemon=True
    )
    sampler.start()
    started = time.monotonic()
    delay = random.uniform(1.0, 12.0)
    reached_at = None
    with contextlib.ExitStack() as decoys:
        decoys.callback(_stop, child)
        while child.poll() is None and time.monotonic() - started < 120:
            if not in_stack and seen.temp_dirs:  # a user's shell in the stack's folder
                folder = sorted(seen.temp_dirs)[0]
                in_stack.append(decoys.enter_context(Decoy(work / f"decoy-{number}.log", folder)))
            new = sorted(set(artifacts.iterdir()) - before)
            if sig is not None and _reached(moment, run, new, started, delay):
                reached_at = time.monotonic() - started
                child.send_signal(sig)  # our own child, not yet reaped: the pid is ours
                break
            time.sleep(0.05)
        signalled = time.monotonic()
        try:
            code = child.wait(timeout=180)
            hung = False
        except subprocess.TimeoutExpired:
            child.kill()
            code, hung = child.wait(), True
        exit_s = time.monotonic() - signalled
        stop.set()
        sampler.join()
        mine = set(artifacts.iterdir()) - before
        left = leftovers(run, seen, mine, args.backend == "docker")
        decoy_ok = all(d.alive() and not d.signals() for d in in_stack)
    row: dict[str, object] = {
        "run": number,
        "signal": sig.name if sig else "-",
        "moment": moment if sig else "-",
        "signalled_at_s": round(reached_at, 2) if reached_at is not None else None,
        "exit_code": code,
        "exit_s": round(exit_s, 2),
        "hung": hung,
        "seen": f"{len(seen.processes)} processes, {len(seen.ports | seen.docker_ports)} ports, "
        f"{len(seen.temp_dirs)} temp folders, {len(seen.containers)} containers",
        "left_right_after": left.counts(),
        "records": [_record_kind(d) for d in sorted(mine)],
        "decoy_in_stack_folder": (
            "none started" if not in_stack else "untouched" if decoy_ok else "SIGNALLED"
        ),
    }
    return row, run, seen, mine


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=20, help="drill runs before the final one")
    parser.add_argument("--backend", choices=["local", "docker"], default="local")
    parser.add_argument("--seed-users", type=int, default=2000, help="a longer seeding window")
    parser.add_argument("--seed", type=int, default=9, help="random seed for signals and moments")
    parser.add_argument("--uninterrupted", type=int, default=4, help="runs left alone")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # unwind: decoys, the drill
    random.seed(args.seed)
    plan: list[tuple[signal.Signals | None, str]] = [
        (SIGNALS[i % 3], MOMENTS[i % 4])  # every pairing within 12 interrupted runs
        for i in range(args.runs - args.uninterrupted)
    ] + [(None, "-")] * args.uninterrupted
    random.shuffle(plan)
    work = Path(tempfile.mkdtemp(prefix="bench-interrupts-"))
    decoy_root = ownership.TEMP_ROOT
    decoy_root.mkdir(parents=True, exist_ok=True)
    print(f"{len(plan)} runs + 1 final, backend {args.backend}, logs in {work}")
    with (
        Decoy(work / "decoy-plain.log") as plain,
        Decoy(work / "decoy-in-temp-root.log", cwd=decoy_root) as in_root,
    ):
        decoys = {"plain": plain, "cwd in the temp root": in_root}
        runs: list[tuple[ProcessIdentity, Seen, set[Path]]] = []
        for number, (sig, moment) in enumerate(plan, 1):
            row, run, seen, artifacts = one_run(number, sig, moment, args, work)
            runs.append((run, seen, artifacts))
            print(json.dumps(row))
        row, run, seen, artifacts = one_run(len(plan) + 1, None, "-", args, work)
        runs.append((run, seen, artifacts))
        print("final:", json.dumps(row))
        total = Left()
        for run, seen, artifacts in runs:
            left = leftovers(run, seen, artifacts, args.backend == "docker")
            total.processes += left.processes
            total.ports += left.ports
            total.temp_dirs += left.temp_dirs
            total.containers += left.containers
            total.half_written += left.half_written
        records = list(ownership.RECORDS.glob("*.jsonl")) if ownership.RECORDS.is_dir() else []
        stale = [r for r in records if any(r.name.startswith(f"{i.pid}-") for i, _, _ in runs)]
        signalled = {name: d.signals() for name, d in decoys.items()}
        alive = {name: d.alive() for name, d in decoys.items()}
    kinds = Counter(f"{s.name if s else 'none'}/{m}" for s, m in plan)
    print("\nplan:", dict(sorted(kinds.items())))
    print(f"after the final run, left by all {len(runs)} runs: {total.counts()}; "
          f"owner records {len(stale)}")  # fmt: skip
    for item in [*total.processes, *map(str, total.ports), *map(str, total.temp_dirs),
                 *total.containers, *map(str, total.half_written)]:  # fmt: skip
        print("  left:", item)
    print(f"decoys beside the runs alive: {alive}; signals received: {signalled}")


if __name__ == "__main__":
    main()
