"""The tutorial's form: the input projection recomputed inside the time loop, step by step."""

from __future__ import annotations

import numpy as np

from rnnexp.backends import Prepared
from rnnexp.backends.numpy_ref import check, forward
from rnnexp.config import RunConfig

__all__ = ["check", "prepare"]


def prepare(cfg: RunConfig, params: dict[str, np.ndarray], x: np.ndarray) -> Prepared:
    return Prepared(call=lambda: forward(cfg, params, x, hoist=False), fetch=lambda out: out)
