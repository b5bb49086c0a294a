"""The values people type into stack and target files and onto the command line, each with its
own check, so that a mistake is caught when the file is loaded (or the option parsed), with
what was expected - not minutes later as a refused connection or a traceback.

Pydantic annotated types for the files; plain argparse types for the options. Paths are
checked relative to the file that names them when the loader passes `{"base": <dir>}` as
validation context (`spec.load_model` does); without it they are only checked for shape.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, ValidationInfo

from rollback_drill.files.userfiles import read_json
from rollback_drill.process.errors import SpecError

Port = Annotated[int, Field(ge=1, le=65535)]


def _non_empty(value: str) -> str:
    if not value.strip():
        raise ValueError("expected a non-empty value")
    return value


NonEmptyStr = Annotated[str, AfterValidator(_non_empty)]


def _url(schemes: tuple[str, ...], example: str) -> AfterValidator:
    shown = " or ".join(f"{s}://" for s in schemes)

    def check(value: str) -> str:
        try:
            parts = urlsplit(value)
            port = parts.port  # raises ValueError for a port out of range or not a number
        except ValueError as exc:
            raise ValueError(f"expected a {shown} URL, e.g. {example} ({exc})") from None
        if parts.scheme.lower() not in schemes:
            got = f"scheme {parts.scheme}://" if parts.scheme else "no scheme"
            raise ValueError(f"expected a {shown} URL, e.g. {example} ({got})")
        if not parts.hostname:
            raise ValueError(f"expected a {shown} URL with a host, e.g. {example}")
        if port == 0:
            raise ValueError(f"expected a port from 1 to 65535 in the URL, e.g. {example}")
        if any(c.isspace() for c in value):
            raise ValueError(f"expected a URL without spaces, e.g. {example}")
        return value

    return AfterValidator(check)


HttpUrl = Annotated[str, _url(("http", "https"), "https://api.example.com")]
"""A service endpoint: http:// or https://."""
HttpsUrl = Annotated[str, _url(("https",), "https://example.com")]
"""A TLS endpoint: https:// only (an http:// URL here would verify nothing about TLS)."""
MongoUri = Annotated[
    str, _url(("mongodb", "mongodb+srv"), "mongodb://user@db.example:27017/?authSource=admin")
]
RedisUrl = Annotated[str, _url(("redis", "rediss"), "redis://cache.example:6379/0")]


def _health_path(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError(f"expected a path starting with '/', e.g. /health (try '/{value}')")
    if "://" in value or any(c.isspace() for c in value):
        raise ValueError("expected a path such as /health, not a URL or text with spaces")
    return value


HealthPath = Annotated[str, AfterValidator(_health_path)]

_DB_FORBIDDEN = set('/\\. "$\0')


def _database_name(value: str) -> str:
    """MongoDB's rules for database names (on any platform)."""
    if not value:
        raise ValueError("expected a MongoDB database name, got an empty one")
    bad = sorted(set(value) & _DB_FORBIDDEN)
    if bad:
        raise ValueError(f"expected a MongoDB database name without {' '.join(map(repr, bad))}")
    if len(value.encode()) > 63:
        raise ValueError("expected a MongoDB database name of at most 63 bytes")
    return value


DatabaseName = Annotated[str, AfterValidator(_database_name)]


def _collection_name(value: str) -> str:
    if not value or "$" in value or "\0" in value or value.startswith("system."):
        raise ValueError(
            "expected a MongoDB collection name: not empty, no '$', not starting with 'system.'"
        )
    return value


CollectionName = Annotated[str, AfterValidator(_collection_name)]
EnvVarName = Annotated[str, Field(pattern=r"^[A-Z_][A-Z0-9_]*$")]
Email = Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$")]


def _base(info: ValidationInfo) -> Path | None:
    context = info.context if isinstance(info.context, dict) else {}
    base = context.get("base")
    return Path(base) if base is not None else None


def check_contract_artifact(path: Path) -> None:
    """SpecError unless `path` is a compiled contract: JSON with an `abi` list and a hex
    `bytecode` (what chain.deploy_registry reads)."""
    data = read_json(path, "a contract artifact (JSON with abi and bytecode)")
    if not isinstance(data, dict):
        raise SpecError(f"{path}: expected a JSON object with abi and bytecode")
    abi, code = data.get("abi"), data.get("bytecode")
    if not isinstance(abi, list) or not all(isinstance(e, dict) for e in abi):
        raise SpecError(f"{path}: abi: expected a list of ABI entries (objects)")
    if not isinstance(code, str) or not re.fullmatch(r"(0x)?([0-9a-fA-F]{2})+", code):
        raise SpecError(f"{path}: bytecode: expected the contract's bytecode as hex")


def _artifact(value: str, info: ValidationInfo) -> str:
    if not value:
        raise ValueError("expected a path to a contract artifact, got an empty one")
    base = _base(info)
    if base is None:
        return value
    path = base / value
    if not path.is_file():
        raise ValueError(
            "expected an existing path to a contract artifact (JSON with abi and bytecode): "
            "not found"
        )
    try:
        check_contract_artifact(path)
    except SpecError as exc:
        raise ValueError(f"expected a contract artifact: {exc}") from None
    return value


ContractArtifact = Annotated[str, AfterValidator(_artifact)]


def _existing_dir(value: str, info: ValidationInfo) -> str:
    base = _base(info)
    if not value:
        raise ValueError("expected a directory path, got an empty one")
    if base is not None and not (base / value).is_dir():
        raise ValueError(f"expected an existing directory (relative to the file): {value!r}")
    return value


ExistingDir = Annotated[str, AfterValidator(_existing_dir)]


def unique_severities(rows: list[Any], wanted: tuple[str, ...]) -> None:
    """A decision matrix answers every severity the classifier can produce, once."""
    seen = [row.severity for row in rows]
    twice = sorted({s for s in seen if seen.count(s) > 1})
    if twice:
        raise ValueError(f"decision_matrix: severity {twice} given twice; expected one row each")
    missing = [s for s in wanted if s not in seen]
    if missing:
        raise ValueError(
            f"decision_matrix: no row for severity {missing}; expected one row for each of "
            f"{list(wanted)} (the drills can classify a fault as any of them)"
        )


# -- command-line options ------------------------------------------------------------------------
def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1 (a count of users, of drills)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number of at least 1, got {value}")
    return value


def positive_float(text: str) -> float:
    """argparse type: seconds > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number above 0, got {text}")
    return value


__all__ = [
    "CollectionName",
    "ContractArtifact",
    "DatabaseName",
    "Email",
    "EnvVarName",
    "ExistingDir",
    "HealthPath",
    "HttpUrl",
    "HttpsUrl",
    "MongoUri",
    "NonEmptyStr",
    "Port",
    "RedisUrl",
    "check_contract_artifact",
    "positive_float",
    "positive_int",
    "unique_severities",
]
