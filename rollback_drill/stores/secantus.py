"""SecantusDB, the MongoDB wire-protocol server the local stack runs (mongod cannot be had
here): how it is started, once, for the stack, the tests and the benchmarks alike."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from rollback_drill.process import proc, procfs
from rollback_drill.process.tools import find_tool
from rollback_drill.stores.mongoconn import client

READY_TIMEOUT_S = 30.0
OPLOG_MAX_ENTRIES = 10_000_000
"""The oplog's length. SecantusDB's default, 100 000 entries, is far below mongod's (5 % of
the disk, at least 990 MB: millions of entries); a 100 000-user seed alone writes 250 000,
and past the cap every 1000th write prunes. Measured here after 250 000 inserts: a
20 000-document transaction cost the server 1.2-1.3 s of CPU at the default and 0.8-0.9 s
with this cap, and the 250 000 inserts themselves 22-26 s against 15-19 s. Entries still go
after the oplog's retention (an hour)."""


CACHE_SIZE = "4G"
"""The storage engine's cache ceiling (memory is taken as data is read, not up front). With
the default 1 GB a million user documents fill it, and a transaction of 10 000 replacements
then never finished (the engine livelocks on what the transaction pins); with 4 GB it took
7.6 s."""


def options() -> list[str]:
    """The server's options besides where it listens and keeps its data (both backends)."""
    return ["--oplog-max-entries", str(OPLOG_MAX_ENTRIES), "--cache-size", CACHE_SIZE]


def argv(port: int | str, storage: Path, host: str = "127.0.0.1") -> list[str]:
    """The server's command line: loopback only, its data under `storage`."""
    return [find_tool("secantusd-py"), "--host", host, "--port", str(port),
            "--storage-path", str(storage), "--log-level", "WARNING", *options()]  # fmt: skip


def uri_of(port: int) -> str:
    return f"mongodb://127.0.0.1:{port}/?directConnection=true"


def answers(uri: str, timeout_s: float = 0.5) -> bool:
    with client(uri, timeout_s) as conn:
        conn.admin.command("ping")
    return True


@dataclass(frozen=True)
class Server:
    uri: str
    pid: int

    def cpu_seconds(self) -> float:
        """User and system CPU the server has used so far."""
        return procfs.cpu_seconds([self.pid])


@contextmanager
def running(storage: Path, log: Path) -> Iterator[Server]:
    """A server of its own (owned, in its own process group, stopped on exit, swept if this
    process dies), once it answers."""
    storage.mkdir(parents=True, exist_ok=True)
    port = proc.free_port()
    server = proc.spawn("mongodb", argv(port, storage), log)
    try:
        server.wait_ready(lambda: answers(uri_of(port)), READY_TIMEOUT_S)
        assert server.pid is not None
        yield Server(uri_of(port), server.pid)
    finally:
        server.stop()
        proc.release_ports([port])  # reserved across processes until now (`proc.free_port`)


__all__ = [
    "CACHE_SIZE",
    "OPLOG_MAX_ENTRIES",
    "Server",
    "answers",
    "argv",
    "options",
    "running",
    "uri_of",
]
