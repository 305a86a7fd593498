"""Seeded weights and inputs in PyTorch's parameter layout: the one source every backend loads.

Names follow ``nn.RNN``/``nn.LSTM``/``nn.GRU``: ``weight_ih_l{k}[_reverse]``, ``weight_hh_l{k}``,
``bias_ih_l{k}``, ``bias_hh_l{k}`` and, for an LSTM with ``proj_size``, ``weight_hr_l{k}``.
Everything is drawn in float64 and then rounded once to the job's dtype, so the float64
reference can run on exactly the numbers the backend sees.
"""

from __future__ import annotations

import numpy as np

from rnnexp.config import Cell, InputDist, RunConfig
from rnnexp.layout import directions, draw, out_size, suffix
from rnnexp.linear import cells

GATES = {Cell.rnn: 1, Cell.lstm: 4, Cell.gru: 3}
# Linear cells (rnnexp.linear.cells has their layout): H-wide arrays one step of a part makes, for the
# size models that count gates (memory, training): mingru z, h~; minlstm f, i, h~; lru a, b and h,
# complex; s6 a, b and h at the default state_size 16.
GATES |= {Cell.mingru: 2, Cell.minlstm: 3, Cell.lru: 6, Cell.s6: 48}
_LINEAR = (Cell.mingru, Cell.minlstm, Cell.lru, Cell.s6)  # rnnexp.linear's cells: their own layout and init


def param_shapes(cfg: RunConfig) -> dict[str, tuple[int, ...]]:
    """Shapes in ``nn.RNN.state_dict()`` order.

    >>> from rnnexp.config import RunConfig
    >>> param_shapes(RunConfig())
    {'weight_ih_l0': (8, 5), 'weight_hh_l0': (8, 8), 'bias_ih_l0': (8,), 'bias_hh_l0': (8,)}
    """
    if cfg.cell in _LINEAR:
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


def make_params(cfg: RunConfig) -> dict[str, np.ndarray]:
    """Seeded parameters, rounded to ``cfg.dtype``; the same seed gives the same numbers everywhere."""
    if cfg.cell in _LINEAR:
        return cells.make_params(cfg)
    rng = np.random.default_rng([cfg.seed, 0])
    dtype = np.dtype(cfg.dtype.value)
    gates = GATES[cfg.cell]
    return {name: draw(rng, cfg, name, shape, gates).astype(dtype) for name, shape in param_shapes(cfg).items()}


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
