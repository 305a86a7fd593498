"""What every cell family shares about its parameters: the words of their layout and how one weight is drawn.

Below ``rnnexp.params`` (nn.RNN/LSTM/GRU's layout) and ``rnnexp.linear.cells`` (the linear cells'),
which both name parameters ``{name}_l{k}[_reverse]`` and draw them under the same ``init`` schemes.
"""

from __future__ import annotations

import numpy as np

from rnnexp.config import Init, RunConfig


def directions(cfg: RunConfig) -> int:
    return 2 if cfg.bidirectional else 1


def out_size(cfg: RunConfig) -> int:
    """Size of the state a layer emits: proj_size when an LSTM projects, else hidden_size."""
    return cfg.proj_size or cfg.hidden_size


def suffix(layer: int, direction: int) -> str:
    return f"_l{layer}" + ("_reverse" if direction else "")


def itemsize(cfg: RunConfig) -> int:
    """Bytes of one number in the job's dtype."""
    return np.dtype(cfg.dtype.value).itemsize


def draw(rng: np.random.Generator, cfg: RunConfig, name: str, shape: tuple[int, ...], gates: int = 1) -> np.ndarray:
    """One parameter under ``cfg.init``, scaled by ``g = cfg.init_gain`` (H = hidden_size, even with proj_size).

    - torch_default: every weight and bias U(-g/sqrt(H), g/sqrt(H)), as ``nn.RNN/LSTM/GRU.reset_parameters``.
    - uniform01: every weight and bias g * U[0, 1), the tutorial's ``np.random.random``.
    - normal: weights N(0, g^2/H); biases 0.
    - xavier_uniform: weights U(-b, b), b = g * sqrt(6 / (fan_in + fan_out)) on the whole stacked matrix,
      as ``nn.init.xavier_uniform_`` (fan_in = columns, fan_out = rows = gates * H); biases 0.
    - orthogonal: weight_hh one orthogonal block per gate, ``gates`` of them (H x H_out, Q^T Q = I; square
      without proj_size) times g, as ``nn.init.orthogonal_`` on each block; weight_ih and weight_hr
      xavier_uniform; biases 0.

    Biases: the two inits that reproduce a known program keep its biases; the three re-initialisation
    schemes zero them, as the usual re-init loop does (scheme on weights, ``nn.init.zeros_`` on biases),
    so their statistics reflect the weights alone.
    """
    init, gain = cfg.init, cfg.init_gain
    if init is Init.torch_default:
        k = gain / np.sqrt(cfg.hidden_size)  # reset_parameters' stdv, weights and biases alike
        return rng.uniform(-k, k, shape)
    if init is Init.uniform01:
        return gain * rng.random(shape)
    if name.startswith("bias"):
        return np.zeros(shape)
    if init is Init.normal:
        return rng.normal(0.0, gain / np.sqrt(cfg.hidden_size), shape)
    if init is Init.orthogonal and name.startswith("weight_hh"):
        return _orthogonal_blocks(rng, shape, gates, gain)
    return _xavier_uniform(rng, shape, gain)


def _xavier_uniform(rng: np.random.Generator, shape: tuple[int, ...], gain: float) -> np.ndarray:
    """``nn.init.xavier_uniform_`` on a 2-D weight: fan_in = columns, fan_out = rows."""
    bound = gain * np.sqrt(6.0 / (shape[0] + shape[1]))
    return rng.uniform(-bound, bound, shape)


def _orthogonal_blocks(rng: np.random.Generator, shape: tuple[int, ...], gates: int, gain: float) -> np.ndarray:
    """One (semi-)orthogonal matrix per gate block, stacked in gate order: ``nn.init.orthogonal_``'s method."""
    rows, cols = shape[0] // gates, shape[1]
    blocks = []
    for _ in range(gates):
        a = rng.normal(size=(max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(a)
        q = q * np.sign(np.diag(r))  # sign fix makes the draw Haar-uniform
        blocks.append(q if rows >= cols else q.T)
    return gain * np.concatenate(blocks, axis=0)
