"""Seeded weights and inputs in PyTorch's parameter layout: the one source every backend loads.

Names follow ``nn.RNN``/``nn.LSTM``/``nn.GRU``: ``weight_ih_l{k}[_reverse]``, ``weight_hh_l{k}``,
``bias_ih_l{k}``, ``bias_hh_l{k}`` and, for an LSTM with ``proj_size``, ``weight_hr_l{k}``.
Everything is drawn in float64 and then rounded once to the job's dtype, so the float64
reference can run on exactly the numbers the backend sees.
"""

from __future__ import annotations

import numpy as np

from rnnexp.config import Cell, Init, InputDist, RunConfig

GATES = {Cell.rnn: 1, Cell.lstm: 4, Cell.gru: 3}
# Linear cells (rnnexp.linear.cells has their layout): H-wide arrays one step of a part makes, for the
# size models that count gates (memory, training): mingru z, h~; minlstm f, i, h~; lru a, b and h,
# complex; s6 a, b and h at the default state_size 16.
GATES |= {Cell.mingru: 2, Cell.minlstm: 3, Cell.lru: 6, Cell.s6: 48}
_LINEAR = (Cell.mingru, Cell.minlstm, Cell.lru, Cell.s6)  # rnnexp.linear's cells: their own layout and init


def directions(cfg: RunConfig) -> int:
    return 2 if cfg.bidirectional else 1


def out_size(cfg: RunConfig) -> int:
    """Size of the state a layer emits: proj_size when an LSTM projects, else hidden_size."""
    return cfg.proj_size or cfg.hidden_size


def suffix(layer: int, direction: int) -> str:
    return f"_l{layer}" + ("_reverse" if direction else "")


def param_shapes(cfg: RunConfig) -> dict[str, tuple[int, ...]]:
    """Shapes in ``nn.RNN.state_dict()`` order.

    >>> from rnnexp.config import RunConfig
    >>> param_shapes(RunConfig())
    {'weight_ih_l0': (8, 5), 'weight_hh_l0': (8, 8), 'bias_ih_l0': (8,), 'bias_hh_l0': (8,)}
    """
    if cfg.cell in _LINEAR:
        from rnnexp.linear import cells

        return cells.param_shapes(cfg)
    gh = GATES[cfg.cell] * cfg.hidden_size
    shapes: dict[str, tuple[int, ...]] = {}
    for layer in range(cfg.layers):
        in_size = cfg.input_size if layer == 0 else out_size(cfg) * directions(cfg)
        for d in range(directions(cfg)):
            s = suffix(layer, d)
            shapes[f"weight_ih{s}"] = (gh, in_size)
            shapes[f"weight_hh{s}"] = (gh, out_size(cfg))
            if cfg.bias:
                shapes[f"bias_ih{s}"] = (gh,)
                shapes[f"bias_hh{s}"] = (gh,)
            if cfg.proj_size:
                shapes[f"weight_hr{s}"] = (cfg.proj_size, cfg.hidden_size)
    return shapes


def input_shape(cfg: RunConfig) -> tuple[int, int, int]:
    if cfg.batch_first:
        return (cfg.batch_size, cfg.timesteps, cfg.input_size)
    return (cfg.timesteps, cfg.batch_size, cfg.input_size)


def expected_output_shape(cfg: RunConfig) -> tuple[int, int, int]:
    """(B, T, D*H_out) if batch_first else (T, B, D*H_out), H_out = proj_size or hidden_size."""
    feat = directions(cfg) * out_size(cfg)
    if cfg.batch_first:
        return (cfg.batch_size, cfg.timesteps, feat)
    return (cfg.timesteps, cfg.batch_size, feat)


def expected_h_n_shape(cfg: RunConfig) -> tuple[int, int, int]:
    """(layers*D, B, H_out): layer-major, the reverse direction right after the forward one."""
    return (cfg.layers * directions(cfg), cfg.batch_size, out_size(cfg))


def expected_c_n_shape(cfg: RunConfig) -> tuple[int, int, int] | None:
    """(layers*D, B, hidden_size) for an LSTM (the cell state is never projected), else None."""
    if cfg.cell is not Cell.lstm:
        return None
    return (cfg.layers * directions(cfg), cfg.batch_size, cfg.hidden_size)


def _draw(rng: np.random.Generator, cfg: RunConfig, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """One parameter under ``cfg.init``, scaled by ``g = cfg.init_gain`` (H = hidden_size, even with proj_size).

    - torch_default: every weight and bias U(-g/sqrt(H), g/sqrt(H)), as ``nn.RNN/LSTM/GRU.reset_parameters``.
    - uniform01: every weight and bias g * U[0, 1), the tutorial's ``np.random.random``.
    - normal: weights N(0, g^2/H); biases 0.
    - xavier_uniform: weights U(-b, b), b = g * sqrt(6 / (fan_in + fan_out)) on the whole stacked matrix,
      as ``nn.init.xavier_uniform_`` (fan_in = columns, fan_out = rows = gates * H); biases 0.
    - orthogonal: weight_hh one orthogonal block per gate (H x H_out, Q^T Q = I; square without proj_size) times g,
      as ``nn.init.orthogonal_`` on each block; weight_ih and weight_hr xavier_uniform; biases 0.

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
        return _orthogonal_blocks(rng, shape, GATES[cfg.cell], gain)
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


def make_params(cfg: RunConfig) -> dict[str, np.ndarray]:
    """Seeded parameters, rounded to ``cfg.dtype``; the same seed gives the same numbers everywhere."""
    if cfg.cell in _LINEAR:
        from rnnexp.linear import cells

        return cells.make_params(cfg)
    rng = np.random.default_rng([cfg.seed, 0])
    dtype = np.dtype(cfg.dtype.value)
    return {name: _draw(rng, cfg, name, shape).astype(dtype) for name, shape in param_shapes(cfg).items()}


def make_inputs(cfg: RunConfig) -> np.ndarray:
    """Seeded input sequence in the layout ``batch_first`` implies (never uninitialised memory).

    ``input_dist`` times ``input_scale`` (s): uniform01 -> s * U[0, 1) (the tutorial's np.random.random),
    normal -> N(0, s^2), zeros -> 0 (s has no effect), ones -> s.
    """
    rng = np.random.default_rng([cfg.seed, 1])
    shape = input_shape(cfg)
    dist = cfg.input_dist
    if dist is InputDist.uniform01:
        x = rng.random(shape)
    elif dist is InputDist.normal:
        x = rng.normal(size=shape)
    elif dist is InputDist.zeros:
        x = np.zeros(shape)
    else:
        x = np.ones(shape)
    return (cfg.input_scale * x).astype(np.dtype(cfg.dtype.value))
