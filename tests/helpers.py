"""Small helpers several test modules share: breaking data, a server that never answers, and
running the verify suite the way a user does (a separate pytest process)."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rollback_drill.stores import mongo
from rollback_drill.tools import PROJECT_ROOT


@contextmanager
def user_deleted(mongodb_uri: str, database: str = "safepsy") -> Iterator[None]:
    """One seeded user (never the test account) is gone for the block, then put back."""
    with mongo.client(mongodb_uri) as conn:
        users = conn[database]["users"]
        victim = users.find_one({"email": {"$ne": "test@safepsy.com"}})
        assert victim is not None
        users.delete_one({"_id": victim["_id"]})
        try:
            yield
        finally:
            users.insert_one(victim)


def run_verify_suite(target: Path | str, *extra: str) -> subprocess.CompletedProcess[str]:
    """`pytest -m verify --target FILE` in its own process, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-m", "verify", "--target", str(target),
         "-p", "no:cacheprovider", "-q", "-rfEs", *extra, str(PROJECT_ROOT / "verifications")],
        capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=300, check=False,
    )  # fmt: skip


@contextmanager
def silent_server() -> Iterator[int]:
    """A port that accepts connections and never answers."""
    server = socket.create_server(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()
