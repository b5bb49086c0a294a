"""Shared fixtures for the engine's own tests: real servers only."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rollback_drill.files.spec import LoadedStack
from rollback_drill.stack.local import LocalStack


@pytest.fixture(scope="module")
def local_stack(stack_file: LoadedStack) -> Iterator[LocalStack]:
    """One reference stack at 1.4.0 per test module; tests that break it must repair it."""
    with LocalStack(stack_file, seed_users=50).running("1.4.0") as stack:
        yield stack
