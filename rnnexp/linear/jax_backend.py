"""The jax backend of the linear cells: the shared equations in jax.numpy, the scans in ``jax.lax``.

``sequential`` is ``lax.scan`` over the steps; ``associative`` is ``lax.associative_scan`` of the pairs
(a_t, b_t); ``chunked`` reshapes the sequence into chunks, runs ``lax.scan`` over the steps of every
chunk at once, carries the state across chunk ends with a second ``lax.scan``, and adds it in.
``forward`` is pure, so ``rnnexp.backends.jax_scan`` compiles it and differentiates it as its own.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from rnnexp.config import RunConfig, Scan
from rnnexp.linear import network, ops

JAX = ops.get("jax")


def _combine(left, right):
    a1, b1 = left
    a2, b2 = right
    return a1 * a2, a2 * b1 + b2


def _loop(a, b):
    def step(h, ab):
        h = ab[0] * h + ab[1]
        return h, h

    return jax.lax.scan(step, jnp.zeros_like(b[0]), (a, b))


def scan(a, b, _ops, kind: Scan, chunk: int):
    a = jnp.broadcast_to(a, b.shape)
    if kind is Scan.associative:
        return jax.lax.associative_scan(_combine, (a, b))[1]
    if kind is Scan.sequential:
        return _loop(a, b)[1]
    steps, rest = b.shape[0], b.shape[1:]
    chunk = min(chunk, steps)
    n_chunks = math.ceil(steps / chunk)
    pad = n_chunks * chunk - steps
    a = jnp.concatenate([a, jnp.ones((pad, *rest), a.dtype)]).reshape((n_chunks, chunk, *rest))
    b = jnp.concatenate([b, jnp.zeros((pad, *rest), b.dtype)]).reshape((n_chunks, chunk, *rest))
    a_t, b_t = jnp.swapaxes(a, 0, 1), jnp.swapaxes(b, 0, 1)  # (chunk, n_chunks, ...): every chunk at once
    _, local = _loop(a_t, b_t)
    prod = jax.lax.cumprod(a_t, axis=0)
    _, ends = _loop(prod[-1], local[-1])  # the state after each chunk
    carry = jnp.concatenate([jnp.zeros_like(ends[:1]), ends[:-1]])  # the state entering each chunk
    h = local + prod * carry[None]
    return jnp.swapaxes(h, 0, 1).reshape((n_chunks * chunk, *rest))[:steps]


def forward(cfg: RunConfig, params: dict, x):
    """(output, h_n, None) in nn.RNN's layout: pure, for ``jax.jit`` and ``jax.grad``."""
    output, h_n, _, _ = network.forward(cfg, params, x, JAX, scan=scan)
    return output, h_n, None
