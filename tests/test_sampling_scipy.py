"""The one error-rate bound (checks/sampling.py, pure Python in log space, so the runtime and
the verify path never import scipy) against scipy's beta quantiles, which is how the exact
Clopper-Pearson limits are defined: upper = Beta.ppf(c, k + 1, n - k), lower =
Beta.ppf(1 - c, k, n - k + 1). A dev-only test: scipy is in the dev extra only."""

from __future__ import annotations

import subprocess
import sys

import pytest

from rollback_drill.checks import sampling

stats = pytest.importorskip("scipy.stats")

GRID = [
    (k, n)
    for n in (1, 2, 12, 20, 59, 60, 200, 1000, 10_000)
    for k in sorted({0, 1, 2, 3, n // 20, n // 12, n // 2, n - 1, n})
    if 0 <= k <= n
] + [(800, 10_000), (8000, 100_000)]


@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
@pytest.mark.parametrize(("k", "n"), GRID)
def test_bounds_equal_scipy_beta_quantiles(k: int, n: int, confidence: float) -> None:
    upper = 1.0 if k >= n else float(stats.beta.ppf(confidence, k + 1, n - k))
    lower = 0.0 if k == 0 else float(stats.beta.ppf(1 - confidence, k, n - k + 1))
    assert sampling.upper_bound(k, n, confidence) == pytest.approx(upper, rel=1e-9, abs=1e-15)
    assert sampling.lower_bound(k, n, confidence) == pytest.approx(lower, rel=1e-9, abs=1e-15)


def test_a_large_window_does_not_underflow() -> None:
    """800 errors in 10 000 once came out as 0.0800: (1 - p)^n underflowed to 0."""
    assert sampling.upper_bound(800, 10_000, 0.95) == pytest.approx(0.0846, abs=1e-4)


def test_the_runtime_does_not_import_scipy() -> None:
    code = (
        "import sys, rollback_drill.checks.sampling, rollback_drill.monitoring.alerts; "
        "print('scipy' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
