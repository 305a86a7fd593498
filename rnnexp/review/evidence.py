"""Is NEW slower than BASE? A confidence interval for the ratio of their per-call times, from the samples.

The interval is the one that inverts the Mann-Whitney U test (the test asv uses): the
Hodges-Lehmann shift of log times, with the Moses distribution-free bounds, read from the exact
null distribution of U. It needs no normality, is exact for the few blocks a quick run times,
and says in the ratio's own units how large a difference the samples support. A difference counts
only when the whole interval lies past the minimum effect ``ratio``:

- regression: the interval's low end is above ``ratio`` (NEW slower by more than that, with 99% confidence)
- faster: its high end is below 1/``ratio``
- same: the whole interval lies within [1/``ratio``, ``ratio``]
- inconclusive: anything else, including too few blocks for any 99% interval (3 vs 3) or no samples at all

>>> v = judge(np.full(8, 1.0) + np.arange(8) * 1e-3, np.full(8, 2.0) + np.arange(8) * 1e-3, ratio=1.1)
>>> v.verdict, round(v.ratio, 2)
('regression', 2.0)
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

CONFIDENCE = 0.99  # per row and timing column; a sweep compares many, so be strict
REGRESSION, FASTER, SAME, INCONCLUSIVE = "regression", "faster", "same", "inconclusive"


@dataclass(frozen=True)
class Verdict:
    verdict: str
    ratio: float  # NEW / BASE per-call time: the Hodges-Lehmann estimate, or the ratio of medians without samples
    low: float = math.nan  # the interval's ends (NaN when there is none)
    high: float = math.nan
    n_base: int = 0
    n_new: int = 0
    reason: str = ""

    def note(self) -> str:
        n = f"{self.n_base} vs {self.n_new} blocks"
        if math.isnan(self.low):
            return f"x{self.ratio:.3g} ({self.reason or n})"
        return f"x{self.ratio:.3g} ({CONFIDENCE:.0%} CI {self.low:.3g}-{self.high:.3g}, {n})"


def u_null_counts(m: int, n: int) -> np.ndarray:
    """How many of the C(m+n, m) orderings give U = 0..m*n: the Gaussian binomial's coefficients.

    [m+n choose m]_q = prod_{i=1..m} (1 - q^(n+i)) / (1 - q^i), expanded as a power series cut at q^(mn).

    >>> u_null_counts(2, 2).tolist()
    [1.0, 1.0, 2.0, 1.0, 1.0]
    """
    size = m * n + 1
    p = np.zeros(size)
    p[0] = 1.0
    for i in range(1, m + 1):
        a = n + i
        if a < size:
            p[a:] -= p[:-a].copy()  # times (1 - q^a)
        pad = -size % i  # divided by (1 - q^i): a running sum over every i-th coefficient
        p = np.concatenate([p, np.zeros(pad)]).reshape(-1, i).cumsum(axis=0).ravel()[:size]
    return p


@functools.lru_cache(maxsize=256)  # a comparison or a history judges thousands of pairs with few (m, n)
def u_null_cdf(m: int, n: int) -> np.ndarray:
    """P(U <= u) for u = 0..m*n when BASE and NEW come from one distribution."""
    counts = u_null_counts(m, n)
    cdf = np.cumsum(counts) / counts.sum()
    cdf.flags.writeable = False  # shared by every caller through the cache
    return cdf


@functools.lru_cache(maxsize=4096)
def moses_rank(m: int, n: int, confidence: float = CONFIDENCE) -> int:
    """k such that the k-th smallest and k-th largest pairwise differences bound the interval (0: none exists)."""
    return int(np.sum(u_null_cdf(m, n) <= (1 - confidence) / 2 * (1 + 1e-12)))


def p_value(base: np.ndarray | None, new: np.ndarray | None, ratio: float) -> float:
    """The exact two-sided p-value of "NEW/BASE lies within [1/ratio, ratio]"; 1.0 without samples on a side.

    Each side is the Mann-Whitney test of the log times with NEW shifted by log(ratio): the test the
    interval inverts, so ``p_value(...) <= 1 - c`` exactly when ``judge(..., confidence=c)`` finds a
    regression or a speed-up. Multiple-comparison procedures (``rnnexp.review.verdicts``) need the p-value.
    """
    if base is None or new is None or not len(base) or not len(new):
        return 1.0
    lb, ln = np.log(np.asarray(base, float)), np.log(np.asarray(new, float))
    diffs = np.sort((ln[:, None] - lb[None, :]).ravel())
    cdf = u_null_cdf(len(lb), len(ln))
    shift = math.log(ratio)
    at_most = int(np.searchsorted(diffs, shift, side="right"))  # pairs not past the band above: few when slower
    at_least = diffs.size - int(np.searchsorted(diffs, -shift, side="left"))  # pairs not past it below
    return min(1.0, 2 * min(float(cdf[at_most]), float(cdf[at_least])))


def judge(
    base: np.ndarray | None,
    new: np.ndarray | None,
    ratio: float,
    confidence: float = CONFIDENCE,
    medians: tuple[float, float] | None = None,
) -> Verdict:
    """The verdict on per-call times ``new`` against ``base`` (seconds, one per block).

    Without samples on either side the verdict is inconclusive, with the ratio of ``medians`` if given.
    """
    if base is None or new is None or not len(base) or not len(new):
        b, n = medians or (math.nan, math.nan)
        est = n / b if b and b > 0 else math.nan
        side = (
            "BASE and NEW"
            if (base is None or not len(base)) and (new is None or not len(new))
            else ("BASE" if base is None or not len(base) else "NEW")
        )
        return Verdict(INCONCLUSIVE, est, reason=f"no samples in {side}")
    lb, ln = np.log(np.asarray(base, float)), np.log(np.asarray(new, float))
    diffs = np.sort((ln[:, None] - lb[None, :]).ravel())
    est = float(np.exp(np.median(diffs)))
    m, n = len(lb), len(ln)
    k = moses_rank(m, n, confidence)
    if k == 0:
        reason = f"{m} vs {n} blocks: too few for a {confidence:.0%} interval"
        return Verdict(INCONCLUSIVE, est, n_base=m, n_new=n, reason=reason)
    low, high = float(np.exp(diffs[k - 1])), float(np.exp(diffs[diffs.size - k]))
    if low > ratio:
        verdict = REGRESSION
    elif high < 1 / ratio:
        verdict = FASTER
    elif low >= 1 / ratio and high <= ratio:
        verdict = SAME
    else:
        verdict = INCONCLUSIVE
    return Verdict(verdict, est, low, high, m, n)
