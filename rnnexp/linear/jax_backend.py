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
from rnnexp.linear import network, ops, scans

JAX = ops.for_jax()


def _loop(a, b, s):
    """(last, every h) of the recurrence by ``lax.scan``, from h_0 = b_0."""

    def step(h, ab):
        h = s.add(s.mul(ab[0], h), ab[1])
        return h, h

    last, rest = jax.lax.scan(step, b[0], (a[1:], b[1:]))
    return last, jnp.concatenate([b[:1], rest])


def scan(a, b, _ops, kind: Scan, chunk: int, log: bool = False):
    s = (scans.Log if log else scans.Linear)(JAX)
    a = jnp.broadcast_to(a, b.shape)
    if kind is Scan.associative:
        return jax.lax.associative_scan(lambda x, y: (s.mul(x[0], y[0]), s.add(s.mul(y[0], x[1]), y[1])), (a, b))[1]
    if kind is Scan.sequential:
        return _loop(a, b, s)[1]
    steps, rest = b.shape[0], b.shape[1:]
    chunk = min(chunk, steps)
    n_chunks = math.ceil(steps / chunk)
    pad = n_chunks * chunk - steps
    a = jnp.concatenate([a, s.one((pad, *rest), a)]).reshape((n_chunks, chunk, *rest))
    b = jnp.concatenate([b, s.zero((pad, *rest), b)]).reshape((n_chunks, chunk, *rest))
    a_t, b_t = jnp.swapaxes(a, 0, 1), jnp.swapaxes(b, 0, 1)  # (chunk, n_chunks, ...): every chunk at once
    _, local = _loop(a_t, b_t, s)
    prod = jnp.cumsum(a_t, axis=0) if log else jax.lax.cumprod(a_t, axis=0)
    h = local
    if n_chunks > 1:
        _, ends = _loop(prod[-1], local[-1], s)  # the state after each chunk
        later = s.add(local[:, 1:], s.mul(prod[:, 1:], ends[None, :-1]))  # chunk 0 starts from zero
        h = jnp.concatenate([local[:, :1], later], axis=1)
    return jnp.swapaxes(h, 0, 1).reshape((n_chunks * chunk, *rest))[:steps]


def forward(cfg: RunConfig, params: dict, x):
    """(output, h_n, None) in nn.RNN's layout: pure, for ``jax.jit`` and ``jax.grad``."""
    output, h_n, _, _ = network.forward(cfg, params, x, JAX, scan=scan)
    return output, h_n, None
