"""The NumPy reference's packed weights and step kernels, shared by ``numpy_ref`` (the forward, and
``numpy_naive`` through it) and ``numpy_grad`` (the recording forward of its BPTT).

The packing and the in-place arithmetic are explained in ``rnnexp.backends.numpy_ref``'s docstring.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rnnexp.config import Cell, Nonlinearity, RunConfig
from rnnexp.params import directions, suffix

StepHook = Callable[[np.ndarray, "np.ndarray | None", np.ndarray], None]  # (gates, c, h) after each step
PACKED_GATES = {Cell.rnn: ("h",), Cell.lstm: ("i", "f", "o", "g"), Cell.gru: ("r", "z", "n")}  # the loop's order


@dataclass(frozen=True)
class Weights:
    """One layer and direction, packed for the loop (gate columns in ``gate_order``'s order)."""

    w_ih_t: np.ndarray  # (in_features, G*H)
    w_hh_t: np.ndarray  # (H_out, G*H)
    bias_x: np.ndarray | None  # (G*H,): b_ih + b_hh, except GRU's n block (b_in only); None without bias
    b_hn: np.ndarray | None  # GRU's recurrent n bias, added before the reset product
    w_hr_t: np.ndarray | None  # (H, proj_size) for a projecting LSTM


def gate_order(cfg: RunConfig) -> tuple[np.ndarray, np.ndarray]:
    """Row order of the packed gates (LSTM: i, f, o, g) and each row's scale: -1 sigmoid, -2 tanh, 1 relu."""
    h = cfg.hidden_size
    blocks = {Cell.rnn: (0,), Cell.lstm: (0, 1, 3, 2), Cell.gru: (0, 1, 2)}[cfg.cell]
    relu = cfg.nonlinearity is Nonlinearity.relu
    scales = {Cell.rnn: (1.0 if relu else -2.0,), Cell.lstm: (-1.0, -1.0, -1.0, -2.0), Cell.gru: (-1.0, -1.0, -2.0)}
    rows = np.concatenate([np.arange(b * h, (b + 1) * h) for b in blocks])
    return rows, np.repeat(scales[cfg.cell], h)


def pack(cfg: RunConfig, params: dict[str, np.ndarray]) -> list[list[Weights]]:
    """packed[layer][direction]: the weights in the loop's layout (see the module docstring)."""
    rows, scale = gate_order(cfg)
    h = cfg.hidden_size
    scale = scale.astype(next(iter(params.values())).dtype)

    def get(name: str, s: str) -> np.ndarray | None:
        p = params.get(name + s)
        return None if p is None else p[rows] * (scale if p.ndim == 1 else scale[:, None])

    grid = []
    for layer in range(cfg.layers):
        row = []
        for d in range(directions(cfg)):
            s = suffix(layer, d)
            b_ih, b_hh = get("bias_ih", s), get("bias_hh", s)
            bias_x, b_hn = None, None
            if b_ih is not None:
                bias_x = b_ih + b_hh
                if cfg.cell is Cell.gru:
                    bias_x[2 * h :] = b_ih[2 * h :]
                    b_hn = np.ascontiguousarray(b_hh[2 * h :])
            w_hr = params.get("weight_hr" + s)
            row.append(
                Weights(
                    w_ih_t=np.ascontiguousarray(get("weight_ih", s).T),
                    w_hh_t=np.ascontiguousarray(get("weight_hh", s).T),
                    bias_x=bias_x,
                    b_hn=b_hn,
                    w_hr_t=None if w_hr is None else np.ascontiguousarray(w_hr.T),
                )
            )
        grid.append(row)
    return grid


def sigmoid_of_negated(a: np.ndarray) -> np.ndarray:
    """In place: a = 1 / (1 + exp(a)), the sigmoid of -a (exp may overflow to inf: 1/inf = 0 is right)."""
    np.exp(a, out=a)
    a += 1
    return np.reciprocal(a, out=a)


def tanh_from_sigmoid(s: np.ndarray, out: np.ndarray | None = None) -> None:
    """out = 2 * s - 1 (into s itself without ``out``): tanh(a) from s = sigmoid(2a)."""
    out = s if out is None else out
    np.multiply(s, 2, out=out)
    out -= 1


def rnn_step(cfg, w, xt, h, c, gates, tmp, dest):
    np.matmul(h, w.w_hh_t, out=gates)  # a contiguous buffer: faster to write than the strided dest
    gates += xt
    if cfg.nonlinearity is Nonlinearity.tanh:
        tanh_from_sigmoid(sigmoid_of_negated(gates), out=dest)  # gates held -2a
    else:
        np.maximum(gates, 0, out=dest)


def lstm_step(cfg, w, xt, h, c, gates, tmp, dest):
    hs = cfg.hidden_size
    np.matmul(h, w.w_hh_t, out=gates)
    gates += xt
    sigmoid_of_negated(gates)  # held -a_i, -a_f, -a_o, -2a_g: now sigmoid(a_i), ..., sigmoid(2a_g)
    i, f, o, g = (gates[:, k * hs : (k + 1) * hs] for k in range(4))
    tanh_from_sigmoid(g)
    c *= f  # c = f*c + i*g
    np.multiply(i, g, out=tmp)
    c += tmp
    hidden = tmp if w.w_hr_t is not None else dest
    np.tanh(c, out=hidden)
    hidden *= o  # h = o * tanh(c)
    if w.w_hr_t is not None:
        np.matmul(hidden, w.w_hr_t, out=dest)


def gru_step(cfg, w, xt, h, c, gates, tmp, dest):
    hs = cfg.hidden_size
    np.matmul(h, w.w_hh_t, out=gates)
    rz, n = gates[:, : 2 * hs], gates[:, 2 * hs :]
    rz += xt[:, : 2 * hs]
    sigmoid_of_negated(rz)
    r, z = rz[:, :hs], rz[:, hs:]
    if w.b_hn is not None:
        n += w.b_hn  # b_hn stays inside the reset product, as in nn.GRU
    n *= r
    n += xt[:, 2 * hs :]
    tanh_from_sigmoid(sigmoid_of_negated(n))  # n held -2 * (x_n + r * h_n)
    np.subtract(h, n, out=dest)  # h' = n + z * (h - n) = (1 - z) * n + z * h
    dest *= z
    dest += n


STEPS = {Cell.rnn: rnn_step, Cell.lstm: lstm_step, Cell.gru: gru_step}
