"""Shared fixtures for the engine's own tests: real servers only."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rollback_drill.files.spec import LoadedStack
from rollback_drill.stack.local import LocalStack
from rollback_drill.stores import secantus


@pytest.fixture(scope="module")
def local_stack(stack_file: LoadedStack) -> Iterator[LocalStack]:
    """One reference stack at 1.4.0 per test module; tests that break it must repair it."""
    with LocalStack(stack_file, seed_users=50).running("1.4.0") as stack:
        yield stack


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A SecantusDB of the module's own: its MongoDB URI."""
    data = tmp_path_factory.mktemp("secantus")
    with secantus.running(data / "db", data / "mongodb.log") as running:
        yield running.uri
