"""How much slower is "now" than the baseline, with an interval: a distribution-free judge in
the manner of canary analysis (Kayenta's Mann-Whitney judge with an effect size).

One p95 from twenty requests held against one stored number cannot tell a regression from
a busy hour: the tail of a small sample moves by half its value from run to run. Instead,
every sample of now is paired with every sample of the baseline of the same operation on the
same route (a stratum), and the ratio of response times is estimated as the Hodges-Lehmann
shift of the log times: the median of all within-stratum log differences. Its confidence
interval comes from the Mann-Whitney statistic, which counts the pairs where now is slower
(pooled over strata, each stratum's variance added): the interval holds the ratios that the
rank test cannot reject at the stated confidence. No distribution is assumed; one outlier
moves the estimate by one pair in thousands.

Pure arithmetic on a few thousand pairs (well under a millisecond per flow): no numpy, whose
import alone would cost a tenth of verify's budget.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist


@dataclass(frozen=True)
class Shift:
    """Now against the baseline: the ratio of response times with its interval, the median
    added seconds, and the one-sided p-value that now is not slower."""

    ratio: float
    low: float
    high: float
    baseline_median_s: float
    p_slower: float
    confidence: float
    baseline_samples: int
    current_samples: int
    strata: int

    @property
    def added_s(self) -> float:
        """The median time the shift adds to a request: the runbook's floor is judged on it."""
        return self.baseline_median_s * (self.ratio - 1)

    def deflated(self, factor: float) -> Shift:
        """The same shift with the machine's own slowdown taken out (see `machine`)."""
        if factor <= 0 or math.isclose(factor, 1.0):
            return self
        return Shift(
            self.ratio / factor,
            self.low / factor,
            self.high / factor,
            self.baseline_median_s,
            self.p_slower,
            self.confidence,
            self.baseline_samples,
            self.current_samples,
            self.strata,
        )

    def shown(self) -> str:
        return (
            f"x{self.ratio:.2f} ({self.confidence:.0%} interval x{self.low:.2f}-x{self.high:.2f}, "
            f"{self.current_samples} vs {self.baseline_samples} samples)"
        )

    def evidence(self) -> dict[str, float | int]:
        return {
            "ratio": round(self.ratio, 4),
            "ratio_low": round(self.low, 4),
            "ratio_high": round(self.high, 4),
            "added_s": round(self.added_s, 5),
            "p_slower": round(self.p_slower, 6),
            "confidence": self.confidence,
            "baseline_samples": self.baseline_samples,
            "current_samples": self.current_samples,
            "strata": self.strata,
        }


def _usable(values: Sequence[float]) -> list[float]:
    """Times of correct answers only: a failed request is judged by the error rate, and a
    time of zero (a clock that did not tick) has no logarithm."""
    return [v for v in values if math.isfinite(v) and v > 0]


def _median(ordered: Sequence[float]) -> float:
    n = len(ordered)
    mid = n // 2
    return ordered[mid] if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def compare(
    baseline: Mapping[str, Sequence[float]],
    current: Mapping[str, Sequence[float]],
    confidence: float,
) -> Shift | None:
    """The shift of `current` over `baseline`, stratum by stratum (keys present in both);
    None when no stratum has samples on both sides."""
    log_diffs: list[float] = []
    pooled_baseline: list[float] = []
    variance = 0.0
    base_n = cur_n = strata = 0
    for key in sorted(baseline.keys() & current.keys()):
        before, now = _usable(baseline[key]), _usable(current[key])
        if not before or not now:
            continue
        strata += 1
        base_n += len(before)
        cur_n += len(now)
        pooled_baseline.extend(before)
        log_before = [math.log(v) for v in before]
        for value in now:
            log_value = math.log(value)
            log_diffs.extend(log_value - b for b in log_before)
        m, n = len(now), len(before)
        variance += m * n * (m + n + 1) / 12
    pairs = len(log_diffs)
    if not pairs:
        return None
    log_diffs.sort()
    pooled_baseline.sort()
    z = NormalDist().inv_cdf((1 + confidence) / 2)
    # The interval: the C-th smallest and largest pairwise differences, C the rank test's
    # critical count (normal approximation; at least the first and last difference).
    critical = max(1, math.floor(pairs / 2 - z * math.sqrt(variance)))
    low, high = log_diffs[critical - 1], log_diffs[pairs - critical]
    slower = sum(d > 0 for d in log_diffs) + 0.5 * sum(d == 0 for d in log_diffs)
    z_stat = (slower - pairs / 2) / math.sqrt(variance) if variance > 0 else 0.0
    return Shift(
        ratio=math.exp(_median(log_diffs)),
        low=math.exp(low),
        high=math.exp(high),
        baseline_median_s=_median(pooled_baseline),
        p_slower=1 - NormalDist().cdf(z_stat),
        confidence=confidence,
        baseline_samples=base_n,
        current_samples=cur_n,
        strata=strata,
    )
