"""The work of a linear cell's forward and backward: FLOPs and bytes moved, from the configuration alone.

Per layer and direction (a part), with T steps, B batch, H hidden_size, I the layer's input width,
N state_size, R = ceil(H/16), and E the scanned elements per step (mingru/minlstm B*H real, lru B*N
complex, s6 B*H*N real):

    part flops = T*B*(matmul + elementwise) + scan_flops(T) * E

- matmul (2 per multiply-add): mingru 2*2H*I, minlstm 2*3H*I, lru 2*2N*I (B) + 2*2H*N (C) + 2*H*I (D),
  s6 2*H*I (in) + 2*(R+2N)*H (x) + 2*H*R (dt).
- elementwise per step (1 per add, multiply, divide, exp, sigmoid, softplus): mingru 3H (sigmoid, 1-z,
  z*h~), minlstm 6H (2 sigmoids, f+i, two divisions, i'*h~), lru 2N (gamma * Bu, complex by real) + 2H
  (Re(Ch) subtraction, + Du), s6 5HN (delta*A, exp, *B_t, the readout's multiply-add) + 5H (softplus,
  dt bias, delta*v, D*v, + skip); plus one add per bias entry (mingru 2H, minlstm 3H, s6 H with bias).
  Per-forward constants (lambda, gamma, A = -exp(A_log)) are not counted.
- scan_flops(T) per element, m = one multiply, s = one add (real 1 and 1; complex 6 and 2):
  sequential (T-1)(m+s); associative: at each level of length L, L//2 combines (2m+s) and (L-1)//2
  fills (m+s), then the level of length L//2 (about 2.5x the loop); chunked with K = ceil(T/C) chunks
  of C: K(C-1)(m+s) local + K(C-1)m products + (K-1)(m+s) carry + KC(m+s) fix-up (about 2.5x).

Bytes moved per scan (``scan_bytes``): every pass of the algorithm over its arrays, reads and writes
at the job's itemsize (twice for complex): sequential 3T*E (a, b in; h out); associative about 14T*E
(per level: the pair combine 3L, the fill 2L, the interleave 2L); chunked 7T*E (local pass 4T,
fix-up 3T). These cells are memory-bound: a scan does one or two FLOPs per element it moves.

Backward (``mode=training``): both matrix products per forward product (2 * matmul), the adjoint of
the elementwise work counted as twice the forward's, and the adjoint scan (a reverse scan, the same
``scan_flops``) plus the coefficient gradient g_a = G * h_{t-1} (one multiply per element).
"""

from __future__ import annotations

import math

from rnnexp.config import Cell, RunConfig, Scan
from rnnexp.linear.cells import dt_rank
from rnnexp.params import directions


def _complex(cfg: RunConfig) -> bool:
    return cfg.cell is Cell.lru


def _mul_add(cfg: RunConfig) -> tuple[int, int]:
    return (6, 2) if _complex(cfg) else (1, 1)


def scanned_elements(cfg: RunConfig) -> int:
    """Elements of the state one step of a part updates (E)."""
    b, h, n = cfg.batch_size, cfg.hidden_size, cfg.state_size
    return {Cell.mingru: b * h, Cell.minlstm: b * h, Cell.lru: b * n, Cell.s6: b * h * n}[cfg.cell]


def scan_flops(cfg: RunConfig, steps: int | None = None) -> int:
    """FLOPs of one scan over ``steps`` (default timesteps), per scanned element (the docstring's model)."""
    steps = cfg.timesteps if steps is None else steps
    m, s = _mul_add(cfg)
    if cfg.scan is Scan.associative:
        total, length = 0, steps
        while length > 1:
            total += (length // 2) * (2 * m + s) + ((length - 1) // 2) * (m + s)
            length //= 2
        return total
    if cfg.scan is Scan.chunked:
        c = min(cfg.scan_chunk, steps)
        k = math.ceil(steps / c)
        return k * (c - 1) * (2 * m + s) + (k - 1) * (m + s) + k * c * (m + s)
    return (steps - 1) * (m + s)


def scan_bytes(cfg: RunConfig) -> int:
    """Bytes one part's scan moves (the docstring's model)."""
    itemsize = 8 if cfg.dtype.value == "float64" else 4
    passes = {Scan.sequential: 3, Scan.associative: 14, Scan.chunked: 7}[cfg.scan]
    return passes * cfg.timesteps * scanned_elements(cfg) * itemsize * (2 if _complex(cfg) else 1)


def _in_size(cfg: RunConfig, layer: int) -> int:
    return cfg.input_size if layer == 0 else directions(cfg) * cfg.hidden_size


def _matmul_per_row(cfg: RunConfig, i: int) -> int:
    h, n, r = cfg.hidden_size, cfg.state_size, dt_rank(cfg)
    return {
        Cell.mingru: 2 * 2 * h * i,
        Cell.minlstm: 2 * 3 * h * i,
        Cell.lru: 2 * 2 * n * i + 2 * 2 * h * n + 2 * h * i,
        Cell.s6: 2 * h * i + 2 * (r + 2 * n) * h + 2 * h * r,
    }[cfg.cell]


def _elementwise_per_row(cfg: RunConfig) -> int:
    h, n = cfg.hidden_size, cfg.state_size
    bias = {Cell.mingru: 2 * h, Cell.minlstm: 3 * h, Cell.lru: 0, Cell.s6: h}[cfg.cell] if cfg.bias else 0
    cell = {Cell.mingru: 3 * h, Cell.minlstm: 6 * h, Cell.lru: 2 * n + 2 * h, Cell.s6: 5 * h * n + 5 * h}
    return bias + cell[cfg.cell]


def matmul_flops(cfg: RunConfig) -> int:
    rows = cfg.timesteps * cfg.batch_size * directions(cfg)
    return rows * sum(_matmul_per_row(cfg, _in_size(cfg, k)) for k in range(cfg.layers))


def elementwise_flops(cfg: RunConfig) -> int:
    """Elementwise work and the scans, every part."""
    parts = cfg.layers * directions(cfg)
    per_part = cfg.timesteps * cfg.batch_size * _elementwise_per_row(cfg) + scan_flops(cfg) * scanned_elements(cfg)
    return parts * per_part


def forward_flops(cfg: RunConfig) -> int:
    return matmul_flops(cfg) + elementwise_flops(cfg)


def backward_flops(cfg: RunConfig) -> int:
    parts = cfg.layers * directions(cfg)
    per_part = 2 * cfg.timesteps * cfg.batch_size * _elementwise_per_row(cfg)
    per_part += (scan_flops(cfg) + cfg.timesteps * _mul_add(cfg)[0]) * scanned_elements(cfg)
    return 2 * matmul_flops(cfg) + parts * per_part


def forward_bytes(cfg: RunConfig) -> int:
    """Bytes the scans of one forward move, every part (``scan_bytes`` each)."""
    return cfg.layers * directions(cfg) * scan_bytes(cfg)
