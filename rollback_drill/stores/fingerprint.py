"""What an integrity baseline holds, and how a later state is judged against it.

Per collection: whether it exists, its documents as (id digest, document digest) pairs, its
indexes (name, keys, unique and other options) and its options. The comparison proves that
no document of the baseline was lost or altered; documents added since are counted, and they
fail the comparison only in collections not declared as written to by users (live traffic,
the verify run's own login and chat probe). Pure data: reading MongoDB is `stores.mongo`.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from rollback_drill.process.errors import FingerprintError
from rollback_drill.stores import bsonscan

FORMAT = "rollback-drill/fingerprint/2"


@dataclass(frozen=True)
class IndexPrint:
    name: str
    key: tuple[tuple[str, Any], ...]
    unique: bool = False
    options: str = "{}"  # every other index option (sparse, TTL, partial filter), canonical JSON

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "key": [list(k) for k in self.key],
            "unique": self.unique,
            "options": json.loads(self.options),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> IndexPrint:
        return cls(
            str(data["name"]),
            tuple((str(k), v) for k, v in data["key"]),
            bool(data.get("unique", False)),
            canonical(data.get("options", {})),
        )


@dataclass(frozen=True)
class CollectionPrint:
    count: int
    sha256: str  # over the sorted records: equal digests mean equal sets of documents
    exists: bool = True
    indexes: tuple[IndexPrint, ...] = ()
    options: str = "{}"
    documents: bytes = field(default=b"", repr=False)  # sorted 16-byte records

    def summary(self) -> dict[str, Any]:
        return {
            "exists": self.exists,
            "count": self.count,
            "sha256": self.sha256,
            "indexes": [i.to_json() for i in self.indexes],
            "options": json.loads(self.options),
        }


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))


def index_print(spec: dict[str, Any]) -> IndexPrint:
    """An index spec (from list_indexes or a manifest) as the fingerprint compares it."""
    info = dict(spec)
    name = str(info.pop("name"))
    key = tuple((str(k), v) for k, v in dict(info.pop("key")).items())
    unique = bool(info.pop("unique", False))
    return IndexPrint(name, key, unique, canonical(info))


def pack(records: list[bytes]) -> tuple[bytes, str]:
    """Sorted, concatenated records and their SHA-256 (order-independent by construction)."""
    records.sort()
    packed = b"".join(records)
    return packed, hashlib.sha256(packed).hexdigest()


@dataclass(frozen=True)
class Fingerprint:
    """A database's collections as a later comparison needs them; see the module docstring.

    `cutoffs` (optional) limits a collection to documents whose time field is at or before a
    moment: a later print with the same cutoffs covers the same documents."""

    database: str
    collections: dict[str, CollectionPrint]
    cutoffs: dict[str, tuple[str, datetime]] = field(default_factory=dict)

    def to_json(self, documents: bool = False) -> dict[str, Any]:
        """Summary for reports; `documents=True` adds the per-document digests (baseline files)."""
        out: dict[str, Any] = {
            "format": FORMAT,
            "database": self.database,
            "cutoffs": {k: [f, t.isoformat()] for k, (f, t) in self.cutoffs.items()},
            "collections": {},
        }
        for name, entry in self.collections.items():
            row = entry.summary()
            if documents:
                row["documents"] = base64.b64encode(entry.documents).decode("ascii")
            out["collections"][name] = row
        return out

    @classmethod
    def from_json(cls, data: Any, source: str = "fingerprint") -> Fingerprint:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            got = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise FingerprintError(
                f"{source}: format: expected {FORMAT!r}, got {got!r} (a baseline from an older "
                "rollback-drill holds no per-document digests: take a new one with "
                "`rollback-drill fingerprint --target FILE`)"
            )
        try:
            prints = {
                str(name): CollectionPrint(
                    count=int(row["count"]),
                    sha256=str(row["sha256"]),
                    exists=bool(row["exists"]),
                    indexes=tuple(IndexPrint.from_json(i) for i in row["indexes"]),
                    options=canonical(row["options"]),
                    documents=base64.b64decode(row["documents"], validate=True),
                )
                for name, row in data["collections"].items()
            }
            cutoffs = {
                str(name): (str(time_field), datetime.fromisoformat(str(moment)))
                for name, (time_field, moment) in (data.get("cutoffs") or {}).items()
            }
            return cls(str(data["database"]), prints, cutoffs)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise FingerprintError(
                f"{source}: expected database and collections.<name>.exists/count/sha256/"
                f"indexes/options/documents ({type(exc).__name__}: {exc})"
            ) from None

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(documents=True)) + "\n")

    @classmethod
    def load(cls, path: Path) -> Fingerprint:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise FingerprintError(
                f"{path}: baseline not found (take it before the change with "
                "`rollback-drill fingerprint --target FILE`)"
            ) from None
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise FingerprintError(f"{path}: not a JSON baseline: {exc}") from None
        return cls.from_json(data, str(path))

    def empty_collections(self) -> list[str]:
        """Collections this print cannot protect: missing or without a single document."""
        return [
            f"{name} ({'missing' if not entry.exists else 'empty'})"
            for name, entry in self.collections.items()
            if not entry.exists or entry.count == 0
        ]


Mode = Literal["exact", "append"]


@dataclass(frozen=True)
class CollectionDiff:
    """One collection's fate since the baseline."""

    name: str
    mode: Mode
    before: CollectionPrint | None
    after: CollectionPrint | None
    lost: int = 0
    altered: int = 0
    added: int = 0
    index_changes: tuple[str, ...] = ()
    options_changed: bool = False
    #: A restore's check: the backup's empty collection is a state to reach, not a baseline
    #: that cannot protect anything.
    empty_is_a_state: bool = False

    @property
    def problems(self) -> list[str]:
        if self.before is None:
            return [f"{self.name}: not in the baseline (take a new one naming it)"]
        empty = self.before.count == 0 and not self.empty_is_a_state
        if not self.before.exists or empty:
            return [
                f"{self.name}: the baseline is {'missing' if not self.before.exists else 'empty'}"
            ]
        if self.after is None or not self.after.exists:
            return [f"{self.name}: collection is gone ({self.before.count} documents before)"]
        found = []
        if self.lost:
            found.append(f"{self.lost} of {self.before.count} documents lost")
        if self.altered:
            found.append(f"{self.altered} altered")
        if self.added and self.mode == "exact":
            found.append(f"{self.added} added")
        found += list(self.index_changes)
        if self.options_changed:
            found.append(f"options {self.before.options} -> {self.after.options}")
        return [f"{self.name}: {'; '.join(found)}"] if found else []

    @property
    def equal(self) -> bool:
        """The baseline's data is intact (documents users added do not count against it)."""
        return not self.problems

    def row(self) -> dict[str, Any]:
        return {
            "collection": self.name,
            "mode": self.mode,
            "count_before": self.before.count if self.before else None,
            "count_after": self.after.count if self.after else None,
            "lost": self.lost,
            "altered": self.altered,
            "added": self.added,
            "indexes": list(self.index_changes) or "equal",
            "options": "changed" if self.options_changed else "equal",
            "sha256_before": self.before.sha256 if self.before else None,
            "sha256_after": self.after.sha256 if self.after else None,
            "equal": self.equal,
        }


def _index_changes(before: CollectionPrint, after: CollectionPrint) -> tuple[str, ...]:
    old = {i.name: i for i in before.indexes}
    new = {i.name: i for i in after.indexes}
    changes = [f"index {n} dropped" for n in sorted(old.keys() - new.keys())]
    changes += [f"index {n} added" for n in sorted(new.keys() - old.keys())]
    changes += [
        f"index {n} changed ({old[n].to_json()} -> {new[n].to_json()})"
        for n in sorted(old.keys() & new.keys())
        if old[n] != new[n]
    ]
    return tuple(changes)


def diff_collection(
    name: str,
    mode: Mode,
    before: CollectionPrint | None,
    after: CollectionPrint | None,
    empty_is_a_state: bool = False,
) -> CollectionDiff:
    if before is None or after is None or not after.exists or not before.exists:
        return CollectionDiff(name, mode, before, after, empty_is_a_state=empty_is_a_state)
    if before.sha256 == after.sha256:
        lost = altered = added = 0
    else:
        old = bsonscan.as_map(before.documents)
        new = bsonscan.as_map(after.documents)
        lost = len(old.keys() - new.keys())
        added = len(new.keys() - old.keys())
        altered = sum(1 for key in old.keys() & new.keys() if old[key] != new[key])
    return CollectionDiff(
        name,
        mode,
        before,
        after,
        lost=lost,
        altered=altered,
        added=added,
        index_changes=_index_changes(before, after),
        options_changed=before.options != after.options,
        empty_is_a_state=empty_is_a_state,
    )


def compare(
    baseline: Fingerprint, current: Fingerprint, collections: list[str], append: set[str]
) -> list[CollectionDiff]:
    """The named collections, each judged in its mode (`append` for those users write to)."""
    return [
        diff_collection(
            name,
            "append" if name in append else "exact",
            baseline.collections.get(name),
            current.collections.get(name),
        )
        for name in collections
    ]
