"""The tutorial's form: the input projection recomputed inside the time loop, step by step."""

from __future__ import annotations

import numpy as np

from rnnexp.backends import Backend, Prepared
from rnnexp.backends.numpy_ref import pack, run
from rnnexp.config import RunConfig

__all__ = ["prepare"]

BACKEND = Backend(name="numpy_naive", packages=("numpy",))


def prepare(cfg: RunConfig, params: dict[str, np.ndarray], x: np.ndarray) -> Prepared:
    packed = pack(cfg, params)  # once, as for the reference: only the hoisting differs between the two
    return Prepared(call=lambda: run(cfg, packed, x, hoist=False), fetch=lambda out: out)
