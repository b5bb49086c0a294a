"""The statistics behind "error rate above 5 %?" and "p95 above 2 s?" on a short sample.

Zero failures in n requests bounds the error rate below 1 - (1 - c)^(1/n) at confidence c
(about 3/n at 95 %, the rule of three), so 59 clean samples show it is below 5 % at 95 %.
With failures the bound is the exact (Clopper-Pearson) upper limit; a flow passes only when
that bound is below the threshold: a rate we cannot show to be low is not called low. The
alerts ask the mirror question with the exact lower limit: a rate we cannot show to be high
pages nobody. Both are the one error-rate bound of the project (monitoring/alertrules.py and
engine/recovery.py use `lower_bound`), computed in log space so that large windows do not
underflow; tests/test_sampling_scipy.py checks them against scipy's beta quantiles.

`percentile` is the one percentile: nearest rank, a failed request counts as +inf (the
slowest), and no values at all is +inf (nothing measured is never fast). Callers that want
"unknown" for no values (the load's LoadStats) say so before calling.
"""

from __future__ import annotations

import math
from collections.abc import Callable


def samples_needed(threshold: float, confidence: float) -> int:
    """The fewest samples whose zero failures bound the error rate below `threshold`."""
    return math.ceil(math.log(1 - confidence) / math.log(1 - threshold))


def _log_binomial_cdf(k: int, n: int, p: float) -> float:
    """log P(X <= k) for X ~ Binomial(n, p), 0 < p < 1, summed in log space: (1 - p)^n alone
    underflows to 0 for n = 10 000 and p = 0.08, which made 800 errors in 10 000 look like
    an upper bound of 0.0800 instead of 0.0846. Summed from k down, stopping once the terms
    (log-concave, so falling for good past the mode) are 50 nats below the largest: a few
    sqrt(n) terms instead of k, so an alert window of thousands stays in milliseconds."""
    log_ratio = math.log(p) - math.log1p(-p)
    term = (
        math.lgamma(n + 1)
        - math.lgamma(k + 1)
        - math.lgamma(n - k + 1)
        + k * math.log(p)
        + (n - k) * math.log1p(-p)
    )  # log P(X = k)
    terms = [term]
    top = term
    mode = (n + 1) * p
    for i in range(k, 0, -1):  # term of i -> term of i - 1
        term += math.log(i / (n - i + 1)) - log_ratio
        terms.append(term)
        top = max(top, term)
        if i - 1 < mode and term < top - 50:
            break
    return top + math.log(math.fsum(math.exp(x - top) for x in terms))


def _bisect(below: Callable[[float], bool], low: float, high: float) -> float:
    """The p in [low, high] where `below(p)` turns from true to false (to double precision)."""
    for _ in range(64):
        mid = (low + high) / 2
        if below(mid):
            low = mid
        else:
            high = mid
    return high


def upper_bound(errors: int, n: int, confidence: float) -> float:
    """The exact (Clopper-Pearson) one-sided upper confidence limit of an error rate seen as
    errors/n: the rate is below it at `confidence`. Used by the checks ("shown low")."""
    if n <= 0 or errors >= n:
        return 1.0
    if errors == 0:
        return -math.expm1(math.log1p(-confidence) / n)
    tail = math.log1p(-confidence)
    return _bisect(lambda p: _log_binomial_cdf(errors, n, p) > tail, errors / n, 1.0)


def lower_bound(errors: int, n: int, confidence: float) -> float:
    """The exact (Clopper-Pearson) one-sided lower confidence limit of an error rate seen as
    errors/n: the rate is above it at `confidence`. Used by the alerts and the step judge
    ("shown high"); no samples or no errors show nothing, 0."""
    if n <= 0 or errors <= 0:
        return 0.0
    if errors >= n:
        return math.exp(math.log1p(-confidence) / n)
    keep = math.log(confidence)  # P(X <= errors - 1) at the bound
    return _bisect(lambda p: _log_binomial_cdf(errors - 1, n, p) > keep, 0.0, errors / n)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); a failed request counts as +inf, never fast."""
    if not values:
        return math.inf
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]
