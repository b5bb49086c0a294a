"""Fuzz: broken stack, release and target files made from the reference ones (a value replaced
by junk, a key dropped or added, the text truncated, bytes spliced in, a line repeated) must
each load or fail with one SpecError naming the file and the field - never another exception
(a traceback for the user), never a hang. The suite runs the same 3 x 120 files every time;
ROLLBACK_DRILL_FUZZ_EXAMPLES=5000 explores new ones."""

from __future__ import annotations

import os
import re
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rollback_drill.files.spec import load_stack
from rollback_drill.files.targetspec import load_target
from rollback_drill.process.errors import SpecError
from tests.helpers import reference_target_doc
from tests.paths import PROJECT_ROOT

SAFEPSY = PROJECT_ROOT / "fixtures" / "safepsy"
HANG_S = 20  # not a speed limit: loading a small file for this long means it hangs
DEEP = int(os.environ.get("ROLLBACK_DRILL_FUZZ_EXAMPLES", "0"))  # e.g. 5000: random, longer
EXAMPLES = settings(
    max_examples=DEEP or 120,
    deadline=None,
    derandomize=not DEEP,  # the suite's run is the same every time; a deep run explores
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

TRICKY = [
    "", " ", "-1", "0", "65536", "http://", "https://", "mongodb://", "/", "health",
    "../../etc/passwd", "127.0.0.1:80", "ftp://x", "1.4.0", "1.5.0", "app", "nginx",
    "critical", "low", "\x00", "café", "0x", "[]", "{}",
]  # fmt: skip
JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.lists(st.integers(min_value=-5, max_value=5), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
    st.sampled_from(TRICKY),
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path into a loaded YAML document (keys and list indexes)."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield (*prefix, key)
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield (*prefix, index)
            yield from _paths(value, (*prefix, index))


def _parent(doc: Any, path: tuple[Any, ...]) -> Any:
    for key in path[:-1]:
        doc = doc[key]
    return doc


@st.composite
def mutation(draw: st.DrawFn, doc: Any) -> tuple[str, tuple[Any, ...] | None, bytes]:
    """(kind, the path it touched or None for text-level damage, the broken file's bytes)."""
    data = yaml.safe_load(yaml.safe_dump(doc))  # a private deep copy
    paths = list(_paths(data))
    kind = draw(st.sampled_from(["replace", "delete", "add", "truncate", "splice", "repeat"]))
    if kind in ("replace", "delete", "add"):
        path = draw(st.sampled_from(paths))
        parent = _parent(data, path)
        if kind == "replace":
            parent[path[-1]] = draw(JUNK)
        elif kind == "delete":
            del parent[path[-1]]
        else:
            into, where = (parent, path[:-1]) if isinstance(parent, dict) else (data, ())
            key = draw(st.text(alphabet=st.characters(categories=["L", "N"]), min_size=1))
            into[key] = draw(JUNK)
            path = (*where, key)
        return kind, path, yaml.safe_dump(data, allow_unicode=True).encode()
    raw = yaml.safe_dump(data).encode()
    if kind == "truncate":
        return kind, None, raw[: draw(st.integers(0, len(raw) - 1))]
    if kind == "splice":
        at = draw(st.integers(0, len(raw)))
        return kind, None, raw[:at] + draw(st.binary(min_size=1, max_size=6)) + raw[at:]
    lines = raw.splitlines(keepends=True)
    at = draw(st.integers(0, len(lines) - 1))
    return kind, None, b"".join([*lines[: at + 1], lines[at], *lines[at + 1 :]])


class Hang(Exception):
    pass


def _alarm(signum: int, frame: FrameType | None) -> None:
    raise Hang(f"loading did not finish within {HANG_S} s")


def _load(loader: Any, path: Path) -> SpecError | None:
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(HANG_S)
    try:
        loader(path)
        return None
    except SpecError as exc:
        return exc
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _check(error: SpecError | None, file: Path, kind: str, path: tuple[Any, ...] | None) -> None:
    if error is None:
        return  # harmless damage (a note changed, a valid value drawn): loading is fine
    message = str(error)
    assert file.name in message, message
    if path:  # the field touched, or the section around it
        dotted = [".".join(str(p) for p in path[:n]) for n in range(len(path), 0, -1)]
        assert any(d in message for d in dotted), f"{kind} at {path}: {message}"
    else:  # text-level damage: where in the file, or which field ended up wrong
        located = re.search(r"line \d+|byte \d+|top level", message)
        field = re.search(r"(^|\n)  [^\n:]+: |\.ya?ml: [^\n:]+: ", message)
        assert located or field, f"{kind}: {message}"


@pytest.fixture(scope="module")
def safepsy_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("fuzz") / "safepsy"
    shutil.copytree(SAFEPSY, dest, ignore=shutil.ignore_patterns("__pycache__", "node_modules"))
    return dest


@given(data=st.data())
@EXAMPLES
def test_broken_stack_file(safepsy_copy: Path, data: st.DataObject) -> None:
    stack = safepsy_copy / "stack.yaml"
    original = (SAFEPSY / "stack.yaml").read_bytes()
    doc = yaml.safe_load(original)
    kind, path, broken = data.draw(mutation(doc))
    stack.write_bytes(broken)
    try:
        _check(_load(load_stack, stack), stack, kind, path)
    finally:
        stack.write_bytes(original)


@given(data=st.data())
@EXAMPLES
def test_broken_release_file(safepsy_copy: Path, data: st.DataObject) -> None:
    release = safepsy_copy / "releases" / "1.5.0.yaml"
    original = (SAFEPSY / "releases" / "1.5.0.yaml").read_bytes()
    doc = yaml.safe_load(original)
    kind, path, broken = data.draw(mutation(doc))
    release.write_bytes(broken)
    try:
        _check(_load(load_stack, safepsy_copy / "stack.yaml"), release, kind, path)
    finally:
        release.write_bytes(original)


@given(data=st.data())
@EXAMPLES
def test_broken_target_file(tmp_path: Path, data: st.DataObject) -> None:
    doc = reference_target_doc()
    kind, path, broken = data.draw(mutation(doc))
    target = tmp_path / "target.yaml"
    target.write_bytes(broken)
    _check(_load(load_target, target), target, kind, path)
