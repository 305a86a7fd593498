"""The parity tolerance of a linear cell: how far a float32 scan may drift from the float64 sequential loop.

A state h_t = sum_s (a_{s+1} ... a_t) b_s passes every rounding of the coefficients it multiplies by,
so errors add up along its memory. First-order bound, u the unit roundoff (2^-24 float32, 2^-53 float64):

    |h_t - fl(h_t)| <= C u (M + d) * max|h|,   C = 4,

- M = min(T, 1 / (1 - rho)): the memory, rho the largest |a_t|. A coefficient rounded once and used at
  every step (LRU's lambda; a saturated gate) perturbs lambda^k by k u: the error grows linearly with
  the memory, and no scan order avoids it. From the configuration: lru rho <= r_max; the gated cells'
  and s6's a_t can come as close to 1 as their inputs drive them, so M = T.
- d: the scan order's own roundings on the longest chain, beyond the loop's one multiply-add per step
  (already in M): sequential 2, associative 4 ceil(log2 T) (2 per level of the tree, for the products
  of a and for the states), chunked 2 (ceil(T/C) + 1) (the carry across chunk ends, then the fix-up).

The row's tolerance is the dtype's usual one (``rnnexp.backends.numpy_ref.PARITY_TOL``) or this bound, whichever is
larger, times max(1, max|reference|). Measured (float32, H=16, B=2, I=8; worst of numpy and torch,
relative to that scale): mingru/minlstm/s6 <= 2.1e-7 for T = 16 .. 16,384, every scan; lru (r_max 0.999)
4e-7 at T=16 to 5e-6 at T=16,384, and 3e-5 / 1.5e-4 / 6.4e-4 at T=16,384 for r_max = 0.999 / 0.9999 /
0.99999, the same for all three scans: the memory term dominates; the bound is 2-5x above those.
jax at T=16,384 alike (mingru 2.1e-7, lru 2.4e-6, s6 1.4e-7). For the gated cells and s6 the bound takes
M = T, the worst case of a gate held at 1 (saturated inputs), so at long T it is loose for typical inputs
(3.9e-3 at T=16,384 against 2e-7 measured): the configuration alone cannot tell how close to 1 a_t gets.
"""

from __future__ import annotations

import math

import numpy as np

from rnnexp.config import Cell, RunConfig, Scan

C = 4


def memory(cfg: RunConfig) -> float:
    """M: the steps over which a rounded coefficient's error keeps adding up."""
    if cfg.cell is Cell.lru:
        return min(cfg.timesteps, 1.0 / (1.0 - cfg.r_max))
    return float(cfg.timesteps)


def order_depth(cfg: RunConfig) -> int:
    """d: the scan order's roundings on the longest chain, beyond one multiply-add per step."""
    steps = cfg.timesteps
    if cfg.scan is Scan.associative:
        return 4 * max(1, math.ceil(math.log2(max(steps, 2))))
    if cfg.scan is Scan.chunked:
        return 2 * (math.ceil(steps / min(cfg.scan_chunk, steps)) + 1)
    return 2


def relative_tol(cfg: RunConfig, floor: float) -> float:
    """The tolerance relative to max(1, max|reference|): ``floor`` (the dtype's usual one) or the bound."""
    u = float(np.finfo(cfg.dtype.value).eps) / 2
    return max(floor, C * u * (memory(cfg) + order_depth(cfg)))
