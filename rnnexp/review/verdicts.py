"""Timing verdicts over a whole comparison: the false discovery rate held over every configuration at once.

Each judged timing (one configuration, one timed column) is one test of "NEW/BASE lies within
[1/ratio, ratio]" (``evidence.p_value``, the exact test behind the project's interval). At
hundreds of configurations a 99% interval each would still flag about one in a hundred by chance,
so the tests of one comparison are decided together by Benjamini-Hochberg at FDR = 1%: of the
changes reported, at most 1% are expected to be false. A reported change carries the interval at
the level BH's cut-off implies (1 - R * FDR / m for R changes of m tests: Benjamini and Yekutieli's
false-coverage-rate interval), which lies wholly past ``ratio``; every other timing keeps its 99% interval.

>>> quiet = [(np.full(8, 1.0) + np.arange(8) * 1e-3, np.full(8, 1.0) + np.arange(8) * 1e-3)] * 3
>>> [v.verdict for v in decide([*quiet, (quiet[0][0], 2 * quiet[0][1])], ratio=1.2)]
['same', 'same', 'same', 'regression']
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from rnnexp.review import evidence
from rnnexp.review.keys import order_rows

FDR = 1 - evidence.CONFIDENCE  # the share of reported changes that may be false, over one comparison
BOOTSTRAP = 2000  # resamples for the geometric mean's interval; seeded, so one comparison prints one interval
CHANGES = (evidence.REGRESSION, evidence.FASTER)

Pair = tuple[np.ndarray | None, np.ndarray | None]


def benjamini_hochberg(p: Sequence[float], q: float = FDR) -> np.ndarray:
    """Which of the hypotheses with p-values ``p`` are rejected at false discovery rate ``q`` (step-up).

    >>> benjamini_hochberg([0.001, 0.02, 0.04, 0.5], q=0.05).tolist()
    [True, True, False, False]
    """
    p = np.asarray(p, float)
    if not p.size:
        return np.zeros(0, bool)
    order = np.argsort(p, kind="stable")
    passed = p[order] <= q * np.arange(1, p.size + 1) / p.size
    rejected = np.zeros(p.size, bool)
    if passed.any():
        rejected[order[: int(np.nonzero(passed)[0].max()) + 1]] = True
    return rejected


def decide(
    pairs: Sequence[Pair], ratio: float, q: float = FDR, medians: Sequence[tuple[float, float] | None] | None = None
) -> list[evidence.Verdict]:
    """One verdict per (base, new) pair of per-call times, the changes chosen together at FDR ``q``.

    A pair without samples is inconclusive and is not one of the tests (it cannot be rejected).
    """
    medians = medians or [None] * len(pairs)
    marginal = [evidence.judge(b, n, ratio, medians=m) for (b, n), m in zip(pairs, medians, strict=True)]
    tested = [i for i, (b, n) in enumerate(pairs) if b is not None and n is not None and len(b) and len(n)]
    p = [evidence.p_value(*pairs[i], ratio) for i in tested]
    rejected = benjamini_hochberg(p, q)
    out = list(marginal)
    if rejected.any():
        level = 1 - q * int(rejected.sum()) / len(tested)
        for i in (t for t, r in zip(tested, rejected, strict=True) if r):
            out[i] = evidence.judge(*pairs[i], ratio, confidence=level)
    for i, r in zip(tested, rejected, strict=True):
        if not r and out[i].verdict in CHANGES:  # past the band alone, not among the changes chosen over all tests
            why = f"not a change at FDR {q:.0%} over {len(tested)} timings"
            out[i] = replace(out[i], verdict=evidence.INCONCLUSIVE, reason=why)
    return out


def geometric_mean(ratios: Sequence[float], confidence: float = evidence.CONFIDENCE) -> tuple[float, float, float]:
    """(geometric mean, low, high) of positive ``ratios``: a percentile bootstrap over configurations.

    The interval says how well the configurations pin down the typical change (their spread, not each
    one's noise); NaN ends with fewer than two ratios.
    """
    logs = np.log(np.asarray([r for r in ratios if r > 0 and math.isfinite(r)], float))
    if not logs.size:
        return math.nan, math.nan, math.nan
    mean = float(np.exp(logs.mean()))
    if logs.size < 2:
        return mean, math.nan, math.nan
    rng = np.random.default_rng(0)
    means = logs[rng.integers(0, logs.size, size=(BOOTSTRAP, logs.size))].mean(axis=1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return mean, float(np.exp(low)), float(np.exp(high))


SAME, FASTER, SLOWER, INCONCLUSIVE = "same", "faster", "slower", "inconclusive"
CHANGED, ONLY_BASE, ONLY_NEW = "changed", "only-in-base", "only-in-new"
ONE_SIDED = (ONLY_BASE, ONLY_NEW)
WORDS = {evidence.REGRESSION: SLOWER, evidence.FASTER: FASTER, evidence.SAME: SAME, evidence.INCONCLUSIVE: INCONCLUSIVE}
COUNTED = (SLOWER, FASTER, SAME, INCONCLUSIVE, CHANGED, ONLY_BASE, ONLY_NEW)  # the summary's order


@dataclass(frozen=True)
class Configuration:
    """One configuration's outcome: ``changed`` (a deterministic column differs), else its main time's verdict."""

    key: tuple  # the configuration's values, then its occurrence number (repeats pair in order)
    label: str
    verdict: str
    ratio: float = math.nan  # NEW / BASE main time, and the interval the verdict rests on
    low: float = math.nan
    high: float = math.nan
    keys: dict = field(default_factory=dict)  # configuration key -> value, for the verdicts table


def per_configuration(configs: list[Configuration], judged: list[tuple[int, evidence.Verdict]]) -> list[Configuration]:
    """``configs`` with their main time's verdict: each one's first judged timing (time_median_ms: the forward,
    or the whole training step); the other phases are in the differences. A changed configuration stays changed."""
    out = list(configs)
    seen: set[int] = set()
    for i, v in judged:
        if i in seen:
            continue
        seen.add(i)
        verdict = out[i].verdict if out[i].verdict == CHANGED else WORDS[v.verdict]
        out[i] = replace(out[i], verdict=verdict, ratio=v.ratio, low=v.low, high=v.high)
    return out


def in_order(configs: list[Configuration], keys: list[str], first: pd.DataFrame) -> list[Configuration]:
    """``configs`` sorted by their configuration keys, as every table of rows is (``keys.order_rows``)."""
    if not configs:
        return configs
    frame = pd.DataFrame([c.keys for c in configs], columns=keys).assign(_at=range(len(configs)))
    return [configs[i] for i in order_rows(frame, keys, first=first)["_at"]]


def counts(configs: Sequence[Configuration]) -> dict[str, int]:
    found = {word: 0 for word in COUNTED}
    for c in configs:
        found[c.verdict] += 1
    return found


def table(configs: Sequence[Configuration], keys: list[str]) -> pd.DataFrame:
    """The verdicts, one row per configuration: its keys, ``verdict``, ``ratio``, ``ci_low``, ``ci_high``."""
    rows = [{**{k: c.keys.get(k) for k in keys}, "verdict": c.verdict, "ratio": c.ratio, "ci_low": c.low,
             "ci_high": c.high} for c in configs]  # fmt: skip
    return pd.DataFrame(rows, columns=[*keys, "verdict", "ratio", "ci_low", "ci_high"])


def summary(configs: Sequence[Configuration]) -> str:
    """One line over every matched configuration: the geometric mean NEW/BASE time and the verdicts' counts."""
    found = counts(configs)
    matched = [c for c in configs if c.verdict not in ONE_SIDED]
    mean, low, high = geometric_mean([c.ratio for c in matched])
    timed = sum(1 for c in matched if c.ratio > 0 and math.isfinite(c.ratio))
    if math.isnan(mean):
        gm = "geometric mean NEW/BASE time: none (no timing compared on both sides)"
    elif math.isnan(low):
        gm = f"geometric mean NEW/BASE time x{mean:.3g} (1 configuration: no interval)"
    else:
        gm = (f"geometric mean NEW/BASE time x{mean:.3g} ({evidence.CONFIDENCE:.0%} bootstrap CI {low:.3g}-{high:.3g}"
              f" over {timed} configurations)")  # fmt: skip
    shown = ", ".join(f"{n} {word}" for word, n in found.items() if n or word in (SLOWER, FASTER, SAME, INCONCLUSIVE))
    return f"{len(matched)} configurations matched: {gm}; {shown}"
