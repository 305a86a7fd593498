"""Hidden-state statistics of a forward pass, computed outside the timed region."""

from __future__ import annotations

from typing import Any

import numpy as np

from rnnexp.backends import Outputs

SATURATION = 0.99  # |h| above this counts as saturated (tanh's slope there is < 0.02)


def state_stats(out: Outputs) -> dict[str, Any]:
    """Statistics of the whole output sequence (every layer's top output, all directions)."""
    h = np.asarray(out.output, dtype=np.float64)
    return {
        "h_mean": float(h.mean()),
        "h_std": float(h.std()),
        "h_min": float(h.min()),
        "h_max": float(h.max()),
        "h_abs_mean": float(np.abs(h).mean()),
        "h_saturation_frac": float((np.abs(h) > SATURATION).mean()),
        "h_dead_frac": float((h == 0).mean()),
    }
