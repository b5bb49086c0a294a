"""The live verify suite: `pytest -m verify --target FILE`, right after a real rollback.

Every verification of the runbook against the target the file describes. The checks run all
at once, the first time a test here asks (see `rollback_drill.plugin.verify`); each test
reports one check. A check that could not look is "not verified", never a pass.
"""

from __future__ import annotations

import pytest

from rollback_drill.checks import ALL_CHECKS, Check, Outcome
from rollback_drill.plugin.verify import attach_evidence

pytestmark = pytest.mark.verify


@pytest.mark.parametrize("check", ALL_CHECKS, ids=lambda c: c.name)
def test_verification(
    check: Check, verify_outcomes: dict[str, Outcome], pytestconfig: pytest.Config
) -> None:
    outcome = verify_outcomes[check.name]
    attach_evidence(pytestconfig, outcome)
    if outcome.result is None:
        pytest.skip(f"not verified: {outcome.skipped}")
    if not outcome.result.ok:
        pytest.fail(outcome.result.explain(), pytrace=False)
