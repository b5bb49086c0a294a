"""The statistics behind "error rate above 5 %?" and "p95 above 2 s?" on a short sample.

Zero failures in n requests bounds the error rate below 1 - (1 - c)^(1/n) at confidence c
(about 3/n at 95 %, the rule of three), so 59 clean samples show it is below 5 % at 95 %.
With failures the bound is the exact (Clopper-Pearson) upper limit; a flow passes only when
that bound is below the threshold: a rate we cannot show to be low is not called low.
"""

from __future__ import annotations

import math


def samples_needed(threshold: float, confidence: float) -> int:
    """The fewest samples whose zero failures bound the error rate below `threshold`."""
    return math.ceil(math.log(1 - confidence) / math.log(1 - threshold))


def _binomial_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p)."""
    total = 0.0
    term = float((1 - p) ** n)
    for i in range(k + 1):
        total += term
        if p >= 1:
            break
        term *= (n - i) / (i + 1) * p / (1 - p)
    return min(total, 1.0)


def upper_bound(errors: int, n: int, confidence: float) -> float:
    """The exact one-sided upper confidence limit of an error rate seen as errors/n."""
    if n <= 0:
        return 1.0
    if errors >= n:
        return 1.0
    if errors == 0:
        return 1 - float((1 - confidence) ** (1 / n))
    low, high = errors / n, 1.0
    for _ in range(60):
        mid = (low + high) / 2
        if _binomial_cdf(errors, n, mid) > 1 - confidence:
            low = mid
        else:
            high = mid
    return high


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); a failed request counts as +inf, never fast."""
    if not values:
        return math.inf
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]
