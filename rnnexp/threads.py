"""Cores and thread pools: how many cores this process may use, and pinning every pool to a count.

One place for both, so the runner, the GEMM peak, training and the environment record agree.
"""

from __future__ import annotations

import contextlib
import os

from threadpoolctl import threadpool_limits

from rnnexp import backends


def usable_cores() -> int:
    """Cores this process may run on (its affinity), which can be fewer than the machine has."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@contextlib.contextmanager
def limited_threads(n: int):
    """Pin BLAS/OpenMP pools (threadpoolctl) and, for each framework already imported, the pool a backend
    pins itself (``Backend.pins_threads``: torch's intra-op pool) to ``n`` threads."""
    with threadpool_limits(limits=n), contextlib.ExitStack() as pools:
        for limit in backends.thread_pins():
            pools.enter_context(limit(n))
        yield
