"""The runbook's `docker-manage.sh backup` and `restore` on a running stack of either backend:
MongoDB and Redis into a folder, and both back from the tool's folder, mongodump output or a
Redis RDB file (the last only where the backend owns the server's data folder), each restore
read back against what it restored from.
"""

from __future__ import annotations

from abc import abstractmethod
from datetime import UTC, datetime
from pathlib import Path

from rollback_drill.files.spec import LoadedStack
from rollback_drill.process.errors import StackError
from rollback_drill.stack.configuration import StackConfiguration
from rollback_drill.stores import mongo
from rollback_drill.stores import redis as redis_store


class StoreBackups(StackConfiguration):
    """The stores' half of a backend-independent Stack; stopping and starting the Redis
    server for an RDB file is the life cycle's (stack/common.py)."""

    def __init__(self, loaded: LoadedStack, workdir: Path | None = None) -> None:
        super().__init__(loaded, workdir)
        self._backups: list[tuple[datetime, Path]] = []

    @abstractmethod
    def stop(self, service: str) -> None: ...

    @abstractmethod
    def start(self, service: str, wait_healthy: bool = True) -> None: ...

    @property
    def backups(self) -> list[tuple[datetime, Path]]:
        return list(self._backups)

    def backup_stores(self, dest: Path) -> Path:
        """The runbook's `docker-manage.sh backup`: MongoDB and Redis into `dest`."""
        taken = datetime.now(UTC)
        mongo.backup(self.mongodb_uri, self.spec.stores.mongodb.database, dest / "mongodb")
        redis_store.backup(self.redis_url, dest / "redis.json")
        self._backups.append((taken, dest))
        return dest

    def restore_stores(self, archive: Path) -> dict[str, int]:
        """The runbook's `docker-manage.sh restore`: both stores back to the archive's state.
        The MongoDB part is the tool's `mongodb/` folder or mongodump output anywhere in
        `archive` (stores.dump); the Redis part the tool's `redis.json`."""
        part = archive / "mongodb" if (archive / "mongodb").is_dir() else archive
        report = mongo.restore(self.mongodb_uri, self.spec.stores.mongodb.database, part)
        if not report.equal:
            raise StackError(f"MongoDB restore from {archive} did not end equal to the backup")
        restored = report.counts()
        rdb = sorted(archive.rglob("*.rdb"), key=lambda p: len(p.parts))
        if (archive / "redis.json").is_file():
            redis_store.flush_all(self.redis_url)
            restored["redis keys"] = redis_store.restore(self.redis_url, archive / "redis.json")
        elif rdb:
            restored["redis keys"] = self.restore_redis_rdb(rdb[0])
        else:  # mongodump output alone: the runbook's Redis rollback, the cache emptied
            redis_store.flush_all(self.redis_url)
            restored["redis keys"] = 0
        return restored

    def restore_redis_rdb(self, rdb: Path) -> int:
        """An RDB file (`dump.rdb`) restored by the stack's own redis-server: what it holds is
        read first by a scratch server (stores.redis), then the server is stopped, the file
        placed as its `dbfilename` in its `dir`, the server started, and every key read back
        against the scratch server's reading. Returns the number of keys."""
        if not self.places_rdb:
            raise StackError(
                f"{rdb}: this backend restores Redis from the tool's redis.json only; an RDB "
                "file needs the server's data folder, which only the local backend owns "
                "(nothing was stopped)"
            )
        expected = redis_store.rdb_contents(rdb)
        place = redis_store.rdb_location(self.redis_url)
        self.stop("redis")
        try:
            self._place_rdb(rdb, place)
        finally:
            self.start("redis")
        found = redis_store.url_contents(self.redis_url)
        if found != expected:
            raise StackError(
                f"Redis restore from {rdb}: the server holds {found.keys} keys "
                f"(sha256 {found.sha256[:12]}), the file {expected.keys} "
                f"(sha256 {expected.sha256[:12]})"
            )
        return found.keys

    #: Whether `_place_rdb` can put a file where the Redis server reads it at start.
    places_rdb = False

    def _place_rdb(self, rdb: Path, place: Path) -> None:
        """Put the RDB file where the stopped server reads it at start."""
        raise StackError(f"{rdb}: this backend cannot place an RDB file")
