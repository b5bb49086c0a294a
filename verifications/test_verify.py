"""The live verify suite: `pytest -m verify --target FILE`, right after a real rollback.

Every verification of the runbook, read-only against the target the file describes. The
only write is the test account's login; checks that would write more are skipped.
"""

from __future__ import annotations

import pytest

from rollback_drill import report
from rollback_drill.checks import ALL_CHECKS, Check, CheckSkipped
from rollback_drill.target import Target

pytestmark = pytest.mark.verify


@pytest.mark.parametrize("check", ALL_CHECKS, ids=lambda c: c.name)
def test_verification(check: Check, verify_target: Target) -> None:
    report.label_verification(check.category, check.doc)
    try:
        result = check.run(verify_target)
    except CheckSkipped as why:
        pytest.skip(str(why))
    report.attach_json(f"{check.name} evidence", result.evidence)
    assert result.ok, result.explain()
