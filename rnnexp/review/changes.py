"""Steps in a timing series: the sweeps at which one configuration's per-call time changed.

A series is one configuration on one machine: each stored sweep's per-call times (its samples),
oldest first. Walking it, each sweep is judged against the sweeps since the last step (at most
``window`` of them, pooled) by the project's one statistic (``evidence.judge``: the Hodges-Lehmann
ratio with its exact 99% interval, and the minimum effect ``ratio``): a ``regression`` or ``faster``
verdict is a step there, and a new segment starts at it. Each step's ratio and interval are then
re-estimated from the whole adjacent segments (each at most ``window`` sweeps), which hold more
samples than the sweep alone. Sweep-to-sweep noise the blocks of one sweep do not show is what
the minimum effect absorbs; ``benchmarks/history.py --false-alarms`` measures how often quiet
series still report a step, and how often real steps are found.

>>> quiet = [np.full(6, 1.0) + np.arange(6) * 1e-3 for _ in range(4)]
>>> slow = [np.full(6, 2.0) + np.arange(6) * 1e-3 for _ in range(3)]
>>> [(s.index, s.verdict, round(s.ratio, 2)) for s in find_steps(quiet + slow, ratio=1.2)]
[(4, 'regression', 2.0)]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rnnexp.review import evidence

WINDOW = 10  # sweeps on each side of a step; older ones describe an older state of the machine
CHANGES = (evidence.REGRESSION, evidence.FASTER)


@dataclass(frozen=True)
class Step:
    index: int  # the position in the series of the first sweep after the step
    verdict: str  # regression (slower) or faster
    ratio: float  # per-call time after / before: the Hodges-Lehmann estimate
    low: float  # its interval's ends
    high: float
    n_before: int  # blocks on each side
    n_after: int


def _pool(series: Sequence[np.ndarray], start: int, stop: int) -> np.ndarray:
    parts = [np.asarray(s, float) for s in series[start:stop] if len(s)]
    return np.concatenate(parts) if parts else np.empty(0)


def find_steps(
    series: Sequence[np.ndarray],
    ratio: float,
    confidence: float = evidence.CONFIDENCE,
    window: int = WINDOW,
) -> list[Step]:
    """The steps in ``series`` (per sweep: positive per-call times), in order."""
    found: list[int] = []
    start = 0
    for i in range(1, len(series)):
        before = _pool(series, max(start, i - window), i)
        if not len(before) or not len(series[i]):
            continue
        if evidence.judge(before, np.asarray(series[i], float), ratio, confidence).verdict in CHANGES:
            found.append(i)
            start = i
    bounds = [0, *found, len(series)]
    steps = []
    for j, i in enumerate(found):
        v = evidence.judge(
            _pool(series, max(bounds[j], i - window), i), _pool(series, i, min(bounds[j + 2], i + window)), ratio,
            confidence,
        )  # fmt: skip
        if v.verdict not in CHANGES:  # the wider segments do not hold it: keep what the sweep itself showed
            v = evidence.judge(_pool(series, max(bounds[j], i - window), i), np.asarray(series[i], float), ratio,
                               confidence)  # fmt: skip
        steps.append(Step(i, v.verdict, v.ratio, v.low, v.high, v.n_base, v.n_new))
    return steps


def describe(step: Step) -> str:
    """``slower x1.52 (99% CI 1.41-1.63)``."""
    word = "slower" if step.verdict == evidence.REGRESSION else "faster"
    interval = "" if math.isnan(step.low) else f" ({evidence.CONFIDENCE:.0%} CI {step.low:.3g}-{step.high:.3g})"
    return f"{word} x{step.ratio:.3g}{interval}"
