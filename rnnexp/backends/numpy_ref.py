"""The NumPy reference: PyTorch's recurrences written out by hand, float32 or float64.

The input projection of every layer and direction is hoisted out of the time loop (one
matrix product over all timesteps, as cuDNN does); the recurrence itself is the tutorial's
loop ``h_t = f(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)``. ``numpy_naive`` keeps the
per-step projection of the tutorial for comparison.
"""

from __future__ import annotations

import numpy as np

from rnnexp.backends import Outputs, Prepared
from rnnexp.config import Cell, ConfigError, Device, Nonlinearity, RunConfig
from rnnexp.params import directions, out_size, suffix

_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")


def check(cfg: RunConfig) -> None:
    if cfg.device is Device.cuda:
        raise ConfigError("device", "cuda", f"backend={cfg.backend} runs on cpu only (allowed: cpu, auto)")


def prepare(cfg: RunConfig, params: dict[str, np.ndarray], x: np.ndarray) -> Prepared:
    return Prepared(call=lambda: forward(cfg, params, x), fetch=lambda out: out)


def reference(cfg: RunConfig, params: dict[str, np.ndarray], x: np.ndarray) -> Outputs:
    """The float64 forward on exactly the numbers a backend was given (its dtype, upcast), every layer kept."""
    p64 = {k: v.astype(np.float64) for k, v in params.items()}
    return forward(cfg, p64, x.astype(np.float64), keep_layers=True)


def forward(
    cfg: RunConfig, params: dict[str, np.ndarray], x: np.ndarray, hoist: bool = True, keep_layers: bool = False
) -> Outputs:
    """Run every layer and direction; layer l>0 reads the concatenated outputs of layer l-1."""
    with np.errstate(over="ignore"):
        return _forward(cfg, params, x, hoist, keep_layers)


def _forward(cfg: RunConfig, params: dict[str, np.ndarray], x: np.ndarray, hoist: bool, keep_layers: bool) -> Outputs:
    seq = x.swapaxes(0, 1) if cfg.batch_first else x  # (T, B, features)
    h_n, c_n, layers = [], [], []
    for layer in range(cfg.layers):
        outs = []
        for d in range(directions(cfg)):
            p = {n: params.get(n + suffix(layer, d)) for n in _NAMES}
            out, h, c = _run_direction(cfg, p, seq[::-1] if d else seq, hoist)
            outs.append(out[::-1] if d else out)
            h_n.append(h)
            c_n.append(c)
        seq = np.concatenate(outs, axis=-1) if len(outs) > 1 else outs[0]
        layers.append(seq)
    output = np.ascontiguousarray(seq.swapaxes(0, 1) if cfg.batch_first else seq)
    c_n = np.stack(c_n) if cfg.cell is Cell.lstm else None
    return Outputs(output, np.stack(h_n), c_n, layers if keep_layers else None)


def _run_direction(cfg: RunConfig, p: dict, seq: np.ndarray, hoist: bool):
    steps, batch, _ = seq.shape
    dt = seq.dtype
    w_ih_t = p["weight_ih"].T
    w_hh_t = np.ascontiguousarray(p["weight_hh"].T)
    b_ih = p["bias_ih"] if p["bias_ih"] is not None else dt.type(0)
    b_hh = p["bias_hh"] if p["bias_hh"] is not None else dt.type(0)
    if hoist:
        xw = (np.ascontiguousarray(seq).reshape(steps * batch, -1) @ w_ih_t).reshape(steps, batch, -1)
        xw += b_ih
    h = np.zeros((batch, out_size(cfg)), dt)
    c = np.zeros((batch, cfg.hidden_size), dt) if cfg.cell is Cell.lstm else None
    out = np.empty((steps, batch, out_size(cfg)), dt)
    step = _STEPS[cfg.cell]
    for t in range(steps):
        xi = xw[t] if hoist else seq[t] @ w_ih_t + b_ih
        h, c = step(cfg, xi, h, c, w_hh_t, b_hh, p, out[t])
    return out, h, c


def _sigmoid(a: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-a))  # exp(-a) may overflow to inf (forward() silences it): 1/inf = 0 is right


def _rnn_step(cfg, xi, h, c, w_hh_t, b_hh, p, dest):
    np.matmul(h, w_hh_t, out=dest)
    dest += xi
    dest += b_hh
    if cfg.nonlinearity is Nonlinearity.tanh:
        np.tanh(dest, out=dest)
    else:
        np.maximum(dest, 0, out=dest)
    return dest, None


def _lstm_step(cfg, xi, h, c, w_hh_t, b_hh, p, dest):
    gates = xi + h @ w_hh_t + b_hh
    i, f, g, o = np.split(gates, 4, axis=1)  # PyTorch's gate order
    c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
    h = _sigmoid(o) * np.tanh(c)
    if p["weight_hr"] is not None:
        h = h @ p["weight_hr"].T
    dest[...] = h
    return dest, c


def _gru_step(cfg, xi, h, c, w_hh_t, b_hh, p, dest):
    gh = h @ w_hh_t + b_hh  # b_hn stays inside the reset product, as in nn.GRU
    x_r, x_z, x_n = np.split(xi, 3, axis=1)
    h_r, h_z, h_n = np.split(gh, 3, axis=1)
    r = _sigmoid(x_r + h_r)
    z = _sigmoid(x_z + h_z)
    n = np.tanh(x_n + r * h_n)
    dest[...] = n + z * (h - n)  # = (1 - z) * n + z * h
    return dest, None


_STEPS = {Cell.rnn: _rnn_step, Cell.lstm: _lstm_step, Cell.gru: _gru_step}
