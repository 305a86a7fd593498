"""The numpy backend of the linear cells, and their float64 sequential reference.

The backend runs the job's scan in the job's dtype; the reference always runs the sequential loop in
float64 on exactly the numbers the backend was given (upcast), and keeps every layer's output.
"""

from __future__ import annotations

import numpy as np

from rnnexp.backends import Outputs, Prepared
from rnnexp.config import RunConfig, Scan
from rnnexp.linear import network, ops

NP = ops.for_numpy()


def forward(cfg: RunConfig, params: dict[str, np.ndarray], x: np.ndarray, kind: Scan | None = None) -> Outputs:
    with np.errstate(over="ignore", under="ignore"):
        output, h_n, layers, _ = network.forward(cfg, params, x, NP, kind)
    return Outputs(output, h_n, None, layers)


def prepare(cfg: RunConfig, params: dict[str, np.ndarray], x: np.ndarray) -> Prepared:
    return Prepared(call=lambda: forward(cfg, params, x), fetch=lambda out: Outputs(out.output, out.h_n))


def reference(cfg: RunConfig, params: dict[str, np.ndarray], x: np.ndarray) -> Outputs:
    """The float64 sequential forward, every layer kept (``numpy_ref.reference`` for a linear cell)."""
    p64 = {k: v.astype(np.float64) for k, v in params.items()}
    return forward(cfg, p64, x.astype(np.float64), Scan.sequential)
