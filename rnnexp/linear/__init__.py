"""Linear recurrences: minGRU, minLSTM, LRU and S6, whose state obeys h_t = a_t * h_{t-1} + b_t.

Because a_t and b_t depend on the input alone, the recurrence is a prefix scan of the pairs
(a_t, b_t) and can be computed sequentially, by a parallel (associative) scan, or in chunks
(``rnnexp.linear.scans``). Modules: ``cells`` (equations, parameters, initialisation), ``scans``,
``network`` (stacked, bidirectional layers over any array library), ``numpy_backend`` (the float64
reference and the numpy backend), ``grad`` (its hand-written BPTT), ``torch_backend``,
``jax_backend``, ``work`` (FLOPs and bytes), ``lyapunov`` (exact exponents).

This module holds what the rest of rnnexp asks of them: which cells, and the config rules. Which
backends run them each backend declares (``Backend.linear_cells``, rnnexp.backends).
"""

from __future__ import annotations

from rnnexp.config import LINEAR_CELLS, STATE_CELLS, is_linear
from rnnexp.config import LINEAR_DEFAULTS as DEFAULTS
from rnnexp.config import check_linear as validate

__all__ = ["DEFAULTS", "LINEAR_CELLS", "STATE_CELLS", "is_linear", "validate"]
