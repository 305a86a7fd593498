"""What both dynamics paths share: the QR method's (``rnnexp.dynamics``) and the linear cells' exact one
(``rnnexp.linear.lyapunov``): the Kaplan-Yorke dimension of a spectrum, the slope of a gradient's
log-norm, and the loss's seeded direction u for gradient flow.
"""

from __future__ import annotations

import numpy as np

from rnnexp.config import RunConfig
from rnnexp.layout import directions, out_size

U_SEED = 2  # u is drawn from [seed, U_SEED]; params use [seed, 0], inputs [seed, 1]


def kaplan_yorke(exponents: np.ndarray, size: int) -> float:
    """j + (l_1 + ... + l_j) / |l_{j+1}|, j the last index whose partial sum is >= 0 (exponents sorted, largest first).

    0 when l_1 < 0; ``size`` when all ``size`` exponents sum to >= 0; NaN when the k < ``size``
    exponents given never bring the partial sum below zero (more are needed).

    >>> kaplan_yorke(np.array([0.5, -0.2, -1.0]), 3)
    2.3
    """
    if not exponents.size or not np.isfinite(exponents[0]):
        return float("nan")
    if exponents[0] < 0:
        return 0.0
    sums = np.cumsum(exponents)  # rises while exponents are positive, then falls
    negative = np.flatnonzero(sums < 0)
    if not negative.size:
        return float(size) if exponents.size == size else float("nan")
    j = int(negative[0])  # the first j partial sums are >= 0
    return float(j + sums[j - 1] / abs(exponents[j]))


def log_slope(log_norm: np.ndarray) -> float:
    """Least-squares slope of log_norm[i] against i (here: the distance to the end), over its finite values."""
    i = np.flatnonzero(np.isfinite(log_norm))
    return float(np.polyfit(i, log_norm[i], 1)[0]) if i.size >= 2 else float("nan")


def unit_vector(cfg: RunConfig) -> np.ndarray:
    """The loss's seeded direction u on the top layer's final state (directions side by side)."""
    u = np.random.default_rng([cfg.seed, U_SEED]).standard_normal(out_size(cfg) * directions(cfg))
    return u / np.linalg.norm(u)
