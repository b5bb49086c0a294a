"""Reading the files people write or may have damaged - stack, release and target files,
baselines, state files - so that whatever is in them, the answer is one `SpecError` naming the
file, where in it, and what was expected; never a traceback and never a hang.

YAML is read with a loader that refuses duplicate keys: PyYAML keeps the last one silently,
so `port: 3000` followed later by `port: 80` would run a stack nobody wrote down. The size of
a file and of what it expands to are bounded, so an alias bomb fails fast instead of eating
the machine.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node
from yaml.reader import ReaderError

from rollback_drill.process.errors import FileError, SpecError

MAX_BYTES = 4 * 1024 * 1024
MAX_NODES = 200_000


def read_text(path: Path, what: str = "a UTF-8 text file") -> str:
    """The file's text, or SpecError for a missing, unreadable, binary or non-UTF-8 file."""
    try:
        if path.is_dir():
            raise SpecError(f"{path}: is a directory, expected {what}")
        with path.open("rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise SpecError(f"{path}: file not found") from None
    except OSError as exc:
        raise SpecError(f"{path}: cannot read ({exc.strerror})") from None
    if len(raw) > MAX_BYTES:
        raise SpecError(f"{path}: larger than {MAX_BYTES // 1024 // 1024} MiB, expected {what}")
    if b"\0" in raw:
        at = raw.index(b"\0")
        raise SpecError(f"{path}: byte {at}: a NUL byte - this is a binary file, expected {what}")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise SpecError(
            f"{path}: line {line} (byte {exc.start}): not UTF-8 ({exc.reason}), expected {what}"
        ) from None


MAX_DEPTH = 64


class _TooDeep(FileError):
    pass


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping, and nesting deeper than any
    file people write (counted while composing, so it never depends on the interpreter's
    recursion limit)."""

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _TooDeep
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:
                raise ConstructorError(
                    None, None, "a mapping key must be a plain value", key_node.start_mark
                ) from None
            if first is not None:
                raise ConstructorError(
                    f"key {key!r} first given on line {first.start_mark.line + 1}",
                    first.start_mark,
                    f"duplicate key {key!r}: each key may appear once",
                    key_node.start_mark,
                )
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


def _count_nodes(data: Any, limit: int = MAX_NODES) -> None:
    """Walk what the YAML expanded to; stop (SpecError by the caller) past `limit` values."""
    stack, seen = [data], 0
    while stack:
        item = stack.pop()
        seen += 1
        if seen > limit:
            raise OverflowError
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def read_yaml(path: Path) -> Any:
    """Parse a YAML file people write: SpecError with line and column for anything wrong."""
    text = read_text(path, "a YAML text file")
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except ReaderError as exc:  # a control character: PyYAML gives a position, not a mark
        line = text[: exc.position].count("\n") + 1
        raise SpecError(
            f"{path}: line {line}: not valid YAML: character {exc.character!r} is not allowed "
            "in YAML text"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}:" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        context = getattr(exc, "context", None)
        more = f" ({context})" if isinstance(exc, ConstructorError) and context else ""
        raise SpecError(f"{path}:{where} not valid YAML: {problem}{more}") from None
    except (RecursionError, _TooDeep):
        raise SpecError(
            f"{path}: nested too deeply to be a YAML file people write (over {MAX_DEPTH} levels)"
        ) from None
    try:
        _count_nodes(data)
    except OverflowError:
        raise SpecError(
            f"{path}: expands to more than {MAX_NODES} values (aliases?), expected a small file"
        ) from None
    return data


def read_json(path: Path, what: str = "a JSON file") -> Any:
    """Parse a JSON file (a baseline, a state file): SpecError with line and column."""
    text = read_text(path, what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError(
            f"{path}: line {exc.lineno}, column {exc.colno}: not valid JSON ({exc.msg}), "
            f"expected {what}"
        ) from None
    except RecursionError:
        raise SpecError(f"{path}: nested too deeply, expected {what}") from None


__all__ = ["SpecError", "read_json", "read_text", "read_yaml"]
