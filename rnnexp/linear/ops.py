"""The few array operations the cells and scans need, for numpy, torch and jax alike.

Each namespace is imported lazily (``get("torch")``, ``for_torch()``), so the numpy reference never pays for a
framework. Every operation returns a new array (no in-place writes), so torch's autograd and jax's tracing see
it all. What differs between the libraries, beyond the operations, is a flag of the namespace: ``in_place``
(its arrays may be written in place: a scan's loop may fill one preallocated array) and ``tape`` (its
autograd records operations: an input that no operation touches gets no gradient at all).
"""

from __future__ import annotations

import functools
from types import SimpleNamespace


def _numpy() -> SimpleNamespace:
    import numpy as np

    def sigmoid(x):
        return 0.5 * (1.0 + np.tanh(0.5 * x))  # never overflows; equal to 1/(1+exp(-x)) to rounding

    return SimpleNamespace(
        in_place=True,
        tape=False,
        linear=lambda u, w, b=None: u @ w.T if b is None else u @ w.T + b,
        sigmoid=sigmoid,
        softplus=lambda x: np.logaddexp(0.0, x),
        exp=np.exp,
        complex=lambda re, im: re + 1j * im,
        real=np.real,
        imag=np.imag,
        conj=np.conj,
        broadcast=np.broadcast_to,
        einsum=np.einsum,
        cat=lambda xs, axis=0: np.concatenate(xs, axis=axis),
        stack=lambda xs, axis=0: np.stack(xs, axis=axis),
        flip=lambda x: x[::-1],
        ones=lambda shape, like: np.ones(shape, like.dtype),
        zeros=lambda shape, like: np.zeros(shape, like.dtype),
        full=lambda shape, value, like: np.full(shape, value, like.dtype),
        logaddexp=np.logaddexp,
        where=np.where,
        log=np.log,
    )


def _torch() -> SimpleNamespace:
    import torch

    return SimpleNamespace(
        in_place=False,  # autograd: a tensor written in place cannot be differentiated through
        tape=True,
        linear=lambda u, w, b=None: torch.nn.functional.linear(u, w, b),
        sigmoid=torch.sigmoid,
        softplus=torch.nn.functional.softplus,
        exp=torch.exp,
        complex=torch.complex,
        real=torch.real,
        imag=torch.imag,
        conj=torch.conj,
        broadcast=lambda x, shape: x.expand(shape),
        einsum=torch.einsum,
        cat=lambda xs, axis=0: torch.cat(xs, dim=axis),
        stack=lambda xs, axis=0: torch.stack(xs, dim=axis),
        flip=lambda x: torch.flip(x, [0]),
        ones=lambda shape, like: torch.ones(shape, dtype=like.dtype, device=like.device),
        zeros=lambda shape, like: torch.zeros(shape, dtype=like.dtype, device=like.device),
        full=lambda shape, value, like: torch.full(shape, value, dtype=like.dtype, device=like.device),
        logaddexp=torch.logaddexp,
        where=torch.where,
        log=torch.log,
    )


def _jax() -> SimpleNamespace:
    import jax
    import jax.numpy as jnp

    hi = jax.lax.Precision.HIGHEST  # float32 products at full precision (a GPU would use TF32 otherwise)

    def linear(u, w, b=None):
        y = jnp.matmul(u, w.T, precision=hi)
        return y if b is None else y + b

    return SimpleNamespace(
        in_place=False,
        tape=False,  # jax.grad differentiates the function: an unused input's gradient is zeros
        linear=linear,
        sigmoid=jax.nn.sigmoid,
        softplus=jax.nn.softplus,
        exp=jnp.exp,
        complex=jax.lax.complex,
        real=jnp.real,
        imag=jnp.imag,
        conj=jnp.conj,
        broadcast=jnp.broadcast_to,
        einsum=functools.partial(jnp.einsum, precision=hi),
        cat=lambda xs, axis=0: jnp.concatenate(xs, axis=axis),
        stack=lambda xs, axis=0: jnp.stack(xs, axis=axis),
        flip=lambda x: jnp.flip(x, 0),
        ones=lambda shape, like: jnp.ones(shape, like.dtype),
        zeros=lambda shape, like: jnp.zeros(shape, like.dtype),
        full=lambda shape, value, like: jnp.full(shape, value, like.dtype),
        logaddexp=jnp.logaddexp,
        where=jnp.where,
        log=jnp.log,
    )


@functools.cache
def get(name: str) -> SimpleNamespace:
    """The operations for ``name``: numpy, torch or jax."""
    return {"numpy": _numpy, "torch": _torch, "jax": _jax}[name]()


def for_numpy() -> SimpleNamespace:
    return get("numpy")


def for_torch() -> SimpleNamespace:
    return get("torch")


def for_jax() -> SimpleNamespace:
    return get("jax")
