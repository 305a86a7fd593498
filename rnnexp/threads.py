"""Cores and thread pools: how many cores this process may use, and pinning every pool to a count.

One place for both, so the runner, the GEMM peak, training and the environment record agree.
"""

from __future__ import annotations

import contextlib
import os
import sys

from threadpoolctl import threadpool_limits


def usable_cores() -> int:
    """Cores this process may run on (its affinity), which can be fewer than the machine has."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@contextlib.contextmanager
def limited_threads(n: int):
    """Pin BLAS/OpenMP pools (threadpoolctl) and torch's intra-op pool (when torch is imported) to ``n`` threads."""
    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch else None
    with threadpool_limits(limits=n):
        if torch:
            torch.set_num_threads(n)
        try:
            yield
        finally:
            if torch:
                torch.set_num_threads(before)
