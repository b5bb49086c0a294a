"""Host ports across processes: the 14 docker drills of one full run that failed with "Bind
for 127.0.0.1:P failed: port is already allocated" when a front container stopped by a
configuration drill started again - the other xdist worker had been handed its port, free to
bind while the container was stopped. A port `free_port` hands out stays reserved, bound or
not, until its holder releases it or dies."""

from __future__ import annotations

import json
import secrets
import signal
import subprocess
import sys

from rollback_drill.process import ports, proc
from tests.paths import PROJECT_ROOT

# A holder: reserves `count` ports in [low, high] without binding any (a stopped container's),
# prints them, then keeps them until it is told to go (a line on stdin) or killed.
_HOLDER = """
import json, sys
from rollback_drill.process import proc
low, high, count = map(int, sys.argv[1:4])
got = [proc.free_port(within=(low, high)) for _ in range(count)]
print(json.dumps(got), flush=True)
sys.stdin.readline()
"""


def _holder(low: int, high: int, count: int) -> tuple[subprocess.Popen[str], list[int]]:
    child = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(low), str(high), str(count)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=PROJECT_ROOT,
    )  # fmt: skip
    assert child.stdout is not None
    return child, json.loads(child.stdout.readline())


def _narrow_range(size: int) -> tuple[int, int]:
    """A small range below the ephemeral ports where nothing is bound now: collisions in it
    are near-certain unless reservations prevent them."""
    for _ in range(50):
        low = 20_000 + secrets.randbelow(8_000)
        high = low + size - 1
        if all(not proc.port_open(p) for p in range(low, high + 1)):
            return low, high
    raise AssertionError("no quiet port range found")


def test_a_reserved_but_unbound_port_is_never_handed_to_another_process() -> None:
    low, high = _narrow_range(40)
    first, held = _holder(low, high, 20)  # 20 of 40 ports reserved, none of them bound
    try:
        second, taken = _holder(low, high, 10)  # another worker asks at the same time
        mine = [proc.free_port(within=(low, high)) for _ in range(5)]  # and this process
        try:
            assert len(set(held)) == 20
            assert not set(held) & set(taken), "two processes were handed the same port"
            assert not set(mine) & (set(held) | set(taken))
        finally:
            second.communicate("go\n", timeout=30)
            proc.release_ports(mine)
    finally:
        first.communicate("go\n", timeout=30)


def test_a_dead_holders_ports_are_free_again_and_a_released_port_is() -> None:
    low, high = _narrow_range(4)
    holder, held = _holder(low, high, 4)  # the whole range
    try:
        try:
            proc.free_port(within=(low, high))
            raise AssertionError("a port held by a live process was handed out")
        except OSError as exc:
            assert f"between {low} and {high}" in str(exc)
    finally:
        holder.send_signal(signal.SIGKILL)  # our own child: no release, the kernel's only
        holder.wait(timeout=30)
    got = sorted(proc.free_port(within=(low, high)) for _ in range(4))
    assert got == sorted(held)
    proc.release_ports(got[:1])
    assert got[0] not in ports.held()
    assert proc.free_port(within=(low, high)) == got[0]
    proc.release_ports(got)
    assert not set(got) & set(ports.held())
