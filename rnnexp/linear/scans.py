"""Three ways to compute h_t = a_t * h_{t-1} + b_t (h_{-1} = 0) along axis 0, for numpy and torch alike.

- ``sequential``: the loop; T dependent steps, T multiply-adds.
- ``associative``: a work-efficient parallel prefix scan of the pairs (a_t, b_t) under
  (a1, b1) . (a2, b2) = (a1 a2, a2 b1 + b2) (Blelloch's up- and down-sweep in its recursive odd-even
  form, as ``jax.lax.associative_scan``): pairs of neighbours are combined, the half-length problem
  is scanned recursively, and the even positions are filled in from their odd neighbours.
  2 ceil(log2 T) dependent levels; about 2T combines of a and b, i.e. ~3x the loop's arithmetic.
- ``chunked``: the sequence is cut into chunks of ``chunk`` steps (the last padded with a = 1, b = 0);
  every chunk is scanned from a zero state at once (a loop of ``chunk`` steps, each over all chunks),
  with the running product of its a's; the state is then carried across the ceil(T/chunk) chunk ends
  sequentially, and added into each chunk in one pass. chunk + T/chunk dependent steps.

Every function returns a new array of b's shape; ``a`` may be a broadcast view of it. The rounding
depth of each order (how many roundings the longest chain of a state passes) is its number of
dependent steps: T, 2 ceil(log2 T), chunk + T/chunk.
"""

from __future__ import annotations

import math

from rnnexp.config import Scan
from rnnexp.linear import ops as ops_mod


class Linear:
    """The scans' arithmetic on values: h_t = a_t h_{t-1} + b_t."""

    log = False

    def __init__(self, ops):
        self.ops = ops

    def mul(self, x, y):
        return x * y

    def add(self, x, y):
        return x + y

    def one(self, shape, like):
        return self.ops.ones(shape, like)

    def zero(self, shape, like):
        return self.ops.zeros(shape, like)


class Log(Linear):
    """The same recurrence on logarithms of positive values (minGRU's log-space form, Feng et al. 2024 sec. 3.3):
    log h_t = logaddexp(log a_t + log h_{t-1}, log b_t); multiply is +, add is logaddexp, 0 is -inf."""

    log = True

    def mul(self, x, y):
        return x + y

    def add(self, x, y):
        return self.ops.logaddexp(x, y)

    def one(self, shape, like):
        return self.ops.zeros(shape, like)

    def zero(self, shape, like):
        return self.ops.full(shape, -math.inf, like)


def sequential(a, b, ops, s=None):
    s = s or Linear(ops)
    if ops.in_place and not s.log:  # the reference's loop writes into one preallocated array
        import numpy as np

        out = np.empty(b.shape, np.result_type(a, b))
        out[0] = b[0]
        for t in range(1, len(b)):
            np.multiply(a[t], out[t - 1], out=out[t])
            out[t] += b[t]
        return out
    h, out = b[0], [b[0]]
    for t in range(1, b.shape[0]):
        h = s.add(s.mul(a[t], h), b[t])
        out.append(h)
    return ops.stack(out)


def associative(a, b, ops, s=None):
    s = s or Linear(ops)
    steps = b.shape[0]
    if steps == 1:
        return b
    n = steps // 2
    a_even, a_odd = a[0 : 2 * n : 2], a[1 : 2 * n : 2]
    pair_b = s.add(s.mul(a_odd, b[0 : 2 * n : 2]), b[1 : 2 * n : 2])
    h_odd = associative(s.mul(a_odd, a_even), pair_b, ops, s)  # h at 1, 3, 5, ...
    h_even = ops.cat([b[0:1], s.add(s.mul(a[2::2], h_odd[: (steps - 1) // 2]), b[2::2])])  # h at 0, 2, 4, ...
    pairs = ops.stack([h_even[:n], h_odd], axis=1).reshape((2 * n, *b.shape[1:]))
    return pairs if steps == 2 * n else ops.cat([pairs, h_even[n:]])


def chunked(a, b, ops, chunk: int, s=None):
    s = s or Linear(ops)
    steps = b.shape[0]
    chunk = min(chunk, steps)
    n_chunks = math.ceil(steps / chunk)
    pad = n_chunks * chunk - steps
    rest = tuple(b.shape[1:])
    a = s.mul(a, s.one(b.shape, b)) if a.shape != b.shape else a  # materialise a broadcast view
    if pad:
        a = ops.cat([a, s.one((pad, *rest), a)])
        b = ops.cat([b, s.zero((pad, *rest), b)])
    a = a.reshape((n_chunks, chunk, *rest))
    b = b.reshape((n_chunks, chunk, *rest))
    local, prod = [b[:, 0]], [a[:, 0]]  # every chunk from a zero state, and the running product of its a's
    for j in range(1, chunk):
        local.append(s.add(s.mul(a[:, j], local[-1]), b[:, j]))
        prod.append(s.mul(a[:, j], prod[-1]))
    local, prod = ops.stack(local, axis=1), ops.stack(prod, axis=1)
    if n_chunks == 1:
        return local[0][:steps]
    carry = [local[0, -1]]  # the state entering chunk 1, 2, ... (chunk 0 starts from zero)
    for k in range(1, n_chunks - 1):
        carry.append(s.add(s.mul(prod[k, -1], carry[-1]), local[k, -1]))
    later = s.add(local[1:], s.mul(prod[1:], ops.stack(carry)[:, None]))
    return ops.cat([local[:1], later]).reshape((n_chunks * chunk, *rest))[:steps]


def scan(a, b, ops, kind: Scan = Scan.sequential, chunk: int = 64, log: bool = False):
    """h for the pairs (a, b) along axis 0 by the ``kind`` of scan; with ``log``, log h from log a and log b."""
    if isinstance(ops, str):
        ops = ops_mod.get(ops)
    s = Log(ops) if log else Linear(ops)
    if b.shape[0] == 1 and ops.tape:
        # h_0 = a_0 h_{-1} + b_0 with h_{-1} = 0, written out so that a is in autograd's graph: with one step,
        # lru's lambda and s6's A_log reach the output through a alone, and their gradient is 0, not missing.
        return s.add(s.mul(a, s.zero(b.shape, b)), b)
    if kind is Scan.associative:
        return associative(a, b, ops, s)
    if kind is Scan.chunked:
        return chunked(a, b, ops, chunk, s)
    return sequential(a, b, ops, s)
