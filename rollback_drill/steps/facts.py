"""Typed hand-over between the parts of a drill: what a scenario or an earlier step produced
(the baseline, a configuration archive, a backup) and a later step needs.

Each fact is declared once, beside its producer, as a typed key (pytest's StashKey move), so a
reader gets the producer's type back, and a drill can prove before its stack starts that
every step's needs are met by what comes before it.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar, cast

from rollback_drill.process.errors import MissingFact

T = TypeVar("T")


class Fact(Generic[T]):
    """A typed key: `BACKUP = Fact[Path]("emergency backup", "the emergency backup's folder")`."""

    __slots__ = ("doc", "name")

    def __init__(self, name: str, doc: str = "") -> None:
        self.name = name
        self.doc = doc

    def __repr__(self) -> str:
        return f"Fact({self.name!r})"


class Facts:
    """What a drill's parts handed each other so far."""

    def __init__(self) -> None:
        self._values: dict[Fact[Any], Any] = {}

    def __setitem__(self, key: Fact[T], value: T) -> None:
        self._values[key] = value

    def __getitem__(self, key: Fact[T]) -> T:
        try:
            return cast(T, self._values[key])
        except KeyError:
            produced = ", ".join(sorted(f.name for f in self._values)) or "nothing"
            raise MissingFact(
                f"no {key.name!r} was produced before it was needed (produced so far: {produced})"
            ) from None

    def get(self, key: Fact[T]) -> T | None:
        return cast(T | None, self._values.get(key))

    def __contains__(self, key: Fact[Any]) -> bool:
        return key in self._values

    def names(self) -> list[str]:
        return sorted(f.name for f in self._values)
