"""One-step Jacobians of a recurrent network's state, in float64, along the reference's trajectory.

A :class:`System` is one causal system: the network's layers run in one direction of time on one
sequence (the batch's first). Its state after step t is every layer's state stacked, layer 0 first:
h for rnn and gru, (h, c) for an LSTM (h is the projected h with ``proj_size``: the next step reads
only (h_proj, c), so that pair is the whole state). Step t maps the state after step t-1 (zeros
before the first) and the input x_t to the state after step t; layer l reads layer l-1's new h, so
its Jacobian is block lower-triangular and is applied layer by layer, never formed.

``jvp`` applies it to tangents and ``vjp`` its transpose to adjoints; both broadcast over leading
axes: one step's coefficients (``coefficients(...)[j]``) with a (k, S) frame, or n steps'
coefficients with (n, S), one vector per step. ``step`` is the nonlinear map itself (tests and the
two-trajectory referee use it). Derivatives come from pre-activations (sech^2, not 1 - tanh^2), so
a unit at tanh(a) = 1.0 in float64 keeps its tiny but nonzero slope.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rnnexp.backends import Outputs
from rnnexp.config import Cell, ConfigError, Nonlinearity, RunConfig
from rnnexp.params import directions, out_size, suffix
from rnnexp.stats import gate_activations, time_major

Blocks = list[tuple[np.ndarray, np.ndarray | None]]  # per layer: (h part, c part or None)


@dataclass(frozen=True)
class Layer:
    """One layer's float64 weights in PyTorch's layout (biases zero without bias)."""

    w_ih: np.ndarray  # (G*H, in_features)
    w_hh: np.ndarray  # (G*H, H_out)
    b_ih: np.ndarray  # (G*H,)
    b_hh: np.ndarray  # (G*H,)
    w_hr: np.ndarray | None  # (proj_size, H) for a projecting LSTM


@dataclass(frozen=True)
class System:
    """Layers, layer 0's inputs and the trajectory of one sequence, all in processing order."""

    cell: Cell
    relu: bool
    hidden_size: int
    out_size: int
    layers: tuple[Layer, ...]
    inputs: np.ndarray  # (T, input_size)
    h: tuple[np.ndarray, ...]  # per layer (T, H_out): the state after each step
    c: tuple[np.ndarray, ...] | None  # per layer (T, H): an LSTM's cell state after each step

    @property
    def steps(self) -> int:
        return self.inputs.shape[0]

    @property
    def layer_size(self) -> int:
        return self.out_size + (self.hidden_size if self.cell is Cell.lstm else 0)

    @property
    def size(self) -> int:
        return len(self.layers) * self.layer_size


def state_size(cfg: RunConfig) -> int:
    """Size of one direction's state: layers x (H_out, plus H for an LSTM's c)."""
    return cfg.layers * (out_size(cfg) + (cfg.hidden_size if cfg.cell is Cell.lstm else 0))


def check_causal(cfg: RunConfig, key: str) -> None:
    """Refuse a deep bidirectional stack: its layer l > 0 reads the reverse direction of layer l-1 at t,
    which has read the inputs t..T-1, so no state at t-1 (with x_t) determines the state at t."""
    if cfg.bidirectional and cfg.layers > 1:
        allowed = f"needs a causal state; bidirectional=true has one only with layers=1 (got layers={cfg.layers})"
        raise ConfigError(key, getattr(cfg, key), allowed)


def systems(cfg: RunConfig, params: dict[str, np.ndarray], x: np.ndarray, ref: Outputs) -> list[System]:
    """One System per direction (the reverse direction's arrays reversed in time), for the batch's first sequence."""
    check_causal(cfg, "lyapunov_k" if cfg.lyapunov_k else "grad_flow")
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    x0 = x[:1] if cfg.batch_first else x[:, :1]
    ref0 = Outputs(None, None, layers=[seq[:, :1] for seq in ref.layers])
    ho, out = out_size(cfg), []
    for d in range(directions(cfg)):
        order = slice(None, None, -1 if d else 1)
        layers = tuple(_layer(p, suffix(k, d)) for k in range(cfg.layers))
        inputs = np.ascontiguousarray(time_major(cfg, np.asarray(x0, np.float64))[order, 0])
        h = tuple(np.ascontiguousarray(seq[order, 0, d * ho : (d + 1) * ho]) for seq in ref.layers)
        c = None
        if cfg.cell is Cell.lstm:  # in processing order already
            c = tuple(
                np.concatenate([ch["c"][:, 0] for ch in gate_activations(cfg, params, ref0, x0, k, d)])
                for k in range(cfg.layers)
            )
        relu = cfg.nonlinearity is Nonlinearity.relu
        out.append(System(cfg.cell, relu, cfg.hidden_size, ho, layers, inputs, h, c))
    return out


def _layer(p: dict[str, np.ndarray], s: str) -> Layer:
    w_ih, w_hh = p["weight_ih" + s], p["weight_hh" + s]
    zero = np.zeros(w_ih.shape[0])
    return Layer(w_ih, w_hh, p.get("bias_ih" + s, zero), p.get("bias_hh" + s, zero), p.get("weight_hr" + s))


# --- activations and their slopes, from pre-activations ----------------------------------------------


def _sech2(a: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return 1.0 / np.cosh(a) ** 2  # cosh overflows to inf past |a| ~ 710: slope 0, which it is


def _sigmoid(a: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * a))


def _sigmoid_slope(a: np.ndarray) -> np.ndarray:
    return 0.25 * _sech2(0.5 * a)


def _prev(a: np.ndarray, t0: int, t1: int) -> np.ndarray:
    """a[t0-1 : t1-1], with zeros (the initial state) in place of a[-1]."""
    if t0 > 0:
        return a[t0 - 1 : t1 - 1]
    return np.concatenate([np.zeros((1,) + a.shape[1:]), a[: t1 - 1]])


def coefficients(sys: System, t0: int, t1: int) -> list[dict[str, np.ndarray]]:
    """Per layer, what steps t0..t1-1's Jacobians need: arrays with a leading (t1 - t0) axis."""
    out = []
    for k, w in enumerate(sys.layers):
        inp = sys.inputs[t0:t1] if k == 0 else sys.h[k - 1][t0:t1]
        h_prev = _prev(sys.h[k], t0, t1)
        a_x, a_h = inp @ w.w_ih.T + w.b_ih, h_prev @ w.w_hh.T + w.b_hh
        if sys.cell is Cell.rnn:
            a = a_x + a_h
            out.append({"d": (a > 0).astype(np.float64) if sys.relu else _sech2(a)})
        elif sys.cell is Cell.gru:
            out.append(_gru_coefficients(sys.hidden_size, a_x, a_h, h_prev))
        else:
            c, c_prev = sys.c[k][t0:t1], _prev(sys.c[k], t0, t1)
            out.append(_lstm_coefficients(sys.hidden_size, a_x + a_h, c, c_prev))
    return out


def _gru_coefficients(hs: int, a_x: np.ndarray, a_h: np.ndarray, h_prev: np.ndarray) -> dict[str, np.ndarray]:
    a_rz = a_x[:, : 2 * hs] + a_h[:, : 2 * hs]
    rz, h_n = _sigmoid(a_rz), a_h[:, 2 * hs :]  # h_n = W_hn h + b_hn, inside the reset product
    a_n = a_x[:, 2 * hs :] + rz[:, :hs] * h_n
    r, z = rz[:, :hs], rz[:, hs:]
    return {"r": r, "z": z, "rz_slope": _sigmoid_slope(a_rz), "n": np.tanh(a_n), "n_slope": _sech2(a_n)} | {
        "h_n": h_n,
        "h_prev": h_prev,
    }


def _lstm_coefficients(hs: int, a: np.ndarray, c: np.ndarray, c_prev: np.ndarray) -> dict[str, np.ndarray]:
    ifo = np.concatenate([a[:, : 2 * hs], a[:, 3 * hs :]], axis=1)
    s = _sigmoid(ifo)
    acts = np.concatenate([s[:, : 2 * hs], np.tanh(a[:, 2 * hs : 3 * hs]), s[:, 2 * hs :]], axis=1)  # i, f, g, o
    slope = _sigmoid_slope(a)
    slope[:, 2 * hs : 3 * hs] = _sech2(a[:, 2 * hs : 3 * hs])
    return {"acts": acts, "slope": slope, "c_prev": c_prev, "tanh_c": np.tanh(c), "tanh_c_slope": _sech2(c)}


def at(co: list[dict[str, np.ndarray]], j: int) -> list[dict[str, np.ndarray]]:
    """One step's coefficients out of a chunk's."""
    return [{k: v[j] for k, v in layer.items()} for layer in co]


# --- tangents forward (JVP) and adjoints backward (VJP), one layer at a time ----------------------------


def _rnn_jvp(w, co, dh, dc, d_in):
    da = dh @ w.w_hh.T
    if d_in is not None:
        da += d_in @ w.w_ih.T
    return co["d"] * da, None


def _rnn_vjp(w, co, lh, lc):
    la = co["d"] * lh
    return la @ w.w_hh, None, la


def _gru_jvp(w, co, dh, dc, d_in):
    hs = co["r"].shape[-1]
    dah = dh @ w.w_hh.T
    dax = d_in @ w.w_ih.T if d_in is not None else np.zeros_like(dah)
    drz = co["rz_slope"] * (dax[..., : 2 * hs] + dah[..., : 2 * hs])
    dr, dz = drz[..., :hs], drz[..., hs:]
    dn = co["n_slope"] * (dax[..., 2 * hs :] + dr * co["h_n"] + co["r"] * dah[..., 2 * hs :])
    return (1 - co["z"]) * dn + (co["h_prev"] - co["n"]) * dz + co["z"] * dh, None  # h' = (1-z) n + z h


def _gru_vjp(w, co, lh, lc):
    lan = lh * (1 - co["z"]) * co["n_slope"]
    lrz = np.concatenate([lan * co["h_n"], lh * (co["h_prev"] - co["n"])], axis=-1) * co["rz_slope"]
    la_h = np.concatenate([lrz, lan * co["r"]], axis=-1)
    return lh * co["z"] + la_h @ w.w_hh, None, np.concatenate([lrz, lan], axis=-1)


def _lstm_jvp(w, co, dh, dc, d_in):
    hs = co["c_prev"].shape[-1]
    da = dh @ w.w_hh.T
    if d_in is not None:
        da += d_in @ w.w_ih.T
    da *= co["slope"]
    acts = co["acts"]
    i, f, g, o = (acts[..., k * hs : (k + 1) * hs] for k in range(4))
    di, df, dg, do = (da[..., k * hs : (k + 1) * hs] for k in range(4))
    dc_new = df * co["c_prev"] + di * g + i * dg  # c' = f c + i g
    if dc is not None:
        dc_new += f * dc
    dm = do * co["tanh_c"] + o * co["tanh_c_slope"] * dc_new  # m = o tanh(c'); h' = m, or W_hr m
    return (dm if w.w_hr is None else dm @ w.w_hr.T), dc_new


def _lstm_vjp(w, co, lh, lc):
    hs = co["c_prev"].shape[-1]
    acts = co["acts"]
    i, f, g, o = (acts[..., k * hs : (k + 1) * hs] for k in range(4))
    lm = lh if w.w_hr is None else lh @ w.w_hr
    lcn = lm * o * co["tanh_c_slope"]
    if lc is not None:
        lcn = lcn + lc
    la = np.concatenate([lcn * g, lcn * co["c_prev"], lcn * i, lm * co["tanh_c"]], axis=-1) * co["slope"]
    return la @ w.w_hh, lcn * f, la


_JVP = {Cell.rnn: _rnn_jvp, Cell.gru: _gru_jvp, Cell.lstm: _lstm_jvp}
_VJP = {Cell.rnn: _rnn_vjp, Cell.gru: _gru_vjp, Cell.lstm: _lstm_vjp}


def jvp(sys: System, co: list[dict[str, np.ndarray]], tangent: Blocks) -> Blocks:
    """J_t applied to a tangent of the state after step t-1: the tangent after step t (layers bottom-up)."""
    out: Blocks = []
    d_in = None  # layer 0's input is data, not state
    for w, c, (dh, dc) in zip(sys.layers, co, tangent, strict=True):
        out.append(_JVP[sys.cell](w, c, dh, dc, d_in))
        d_in = out[-1][0]
    return out


def vjp(sys: System, co: list[dict[str, np.ndarray]], adjoint: Blocks) -> tuple[Blocks, Blocks]:
    """J_t^T applied to an adjoint of the state after step t: (total, previous).

    ``adjoint`` is what reaches each layer's state at t from later steps (and the loss). ``total``
    adds what reaches it through the layers above at the same step: dL/d(state of layer l at t), as
    backpropagation through time has it. ``previous`` is J_t^T ``adjoint``: the adjoint after step t-1.
    """
    total: Blocks = [None] * len(sys.layers)  # type: ignore[list-item]
    previous: Blocks = [None] * len(sys.layers)  # type: ignore[list-item]
    from_above = None
    for k in range(len(sys.layers) - 1, -1, -1):
        w, (lh, lc) = sys.layers[k], adjoint[k]
        if from_above is not None:
            lh = lh + from_above
        total[k] = (lh, lc)
        lh_prev, lc_prev, la_x = _VJP[sys.cell](w, co[k], lh, lc)
        previous[k] = (lh_prev, lc_prev)
        from_above = la_x @ w.w_ih if k > 0 else None
    return total, previous


def split(sys: System, v: np.ndarray) -> Blocks:
    """A flat (..., S) state or tangent as per-layer blocks (views)."""
    ho, n = sys.out_size, sys.layer_size
    lstm = sys.cell is Cell.lstm
    return [
        (v[..., k * n : k * n + ho], v[..., k * n + ho : (k + 1) * n] if lstm else None) for k in range(len(sys.layers))
    ]


def join(blocks: Blocks) -> np.ndarray:
    return np.concatenate([b for pair in blocks for b in pair if b is not None], axis=-1)


# --- the nonlinear step ------------------------------------------------------------------------------------


def step(sys: System, t: int, state: Blocks) -> Blocks:
    """The state after step t from the state after step t-1 (the float64 cell equations, as nn.RNN/LSTM/GRU)."""
    out: Blocks = []
    inp = sys.inputs[t]
    hs = sys.hidden_size
    for w, (h, c) in zip(sys.layers, state, strict=True):
        a_x, a_h = inp @ w.w_ih.T + w.b_ih, h @ w.w_hh.T + w.b_hh
        if sys.cell is Cell.rnn:
            a = a_x + a_h
            out.append((np.maximum(a, 0) if sys.relu else np.tanh(a), None))
        elif sys.cell is Cell.gru:
            rz = _sigmoid(a_x[..., : 2 * hs] + a_h[..., : 2 * hs])
            n = np.tanh(a_x[..., 2 * hs :] + rz[..., :hs] * a_h[..., 2 * hs :])
            out.append(((1 - rz[..., hs:]) * n + rz[..., hs:] * h, None))
        else:
            a = a_x + a_h
            i, f, g, o = (a[..., k * hs : (k + 1) * hs] for k in range(4))
            c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
            m = _sigmoid(o) * np.tanh(c)
            out.append((m if w.w_hr is None else m @ w.w_hr.T, c))
        inp = out[-1][0]
    return out


def initial_state(sys: System) -> Blocks:
    return split(sys, np.zeros(sys.size))


def state_at(sys: System, t: int) -> Blocks:
    """The reference's state after step t (t = -1: the zero initial state)."""
    if t < 0:
        return initial_state(sys)
    return [(sys.h[k][t], sys.c[k][t] if sys.c is not None else None) for k in range(len(sys.layers))]
