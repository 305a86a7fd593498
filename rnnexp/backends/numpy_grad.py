"""Backpropagation through time by hand: the float64 reference gradient and the numpy backend's training step.

The loss is ``L = sum(output * d_output) + sum(h_n * d_h_n) (+ sum(c_n * d_c_n))``, so the backward
is the vector-Jacobian product of the forward with those cotangents. It is laid out as cuDNN's:

1. ``record``: the forward of ``numpy_ref`` (same packed weights, same step arithmetic), time-major
   and contiguous inside, the input projection computed straight into the gate tape, keeping a
   tape per layer and direction: the layer's input and output
   sequences, and per cell what the derivatives need (LSTM: gates i, f, o, g, c_t and tanh(c_t),
   and o * tanh(c_t) before a projection; GRU: gates r, z, n and ``W_hn h_{t-1} + b_hn``).
2. ``backward``: per layer (top first) and direction, the only per-step loop, the recurrent
   adjoint, carries dL/dh (and dL/dc) back through time; each step forms its local derivatives
   from its tape row (in cache-sized buffers) and writes dL/d(gate pre-activations) ``dA``.
   Everything else is one big matrix product over all T*B rows: dL/d(layer input) = dA W_ih,
   dW_ih = dA^T input, dW_hh = dA^T h_{t-1}, dW_hr = (dL/dh)^T (o * tanh c), dbias = 1^T dA
   (column sums, as a GEMV). The input gradient and the
   parameter gradients are separate products, so ``want_x`` / ``want_params`` skip the other's
   (a lower layer still needs dL/d(its output), so only layer 0's ``dA W_ih`` is dropped for
   parameters alone).

Gates are kept in the packed order (LSTM i, f, o, g); the matrices the backward multiplies are the
unscaled PyTorch rows in that order, and each weight and bias gradient is scattered back to
PyTorch's row order, so every gradient comes out in PyTorch's layout (``param_shapes``).

``step_vjp`` exposes one step's vector-Jacobian product (dL/d(state_t) -> dL/d(state_{t-1}),
dL/d(input_t)) with the very arithmetic of the loop, for gradient-flow analyses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rnnexp.backends import Outputs, PreparedTraining
from rnnexp.backends._numpy import Weights, gate_order, pack, rnn_step, sigmoid_of_negated, tanh_from_sigmoid
from rnnexp.config import Cell, Nonlinearity, RunConfig
from rnnexp.layout import itemsize
from rnnexp.params import GATES, directions, out_size, param_shapes, suffix

GATES_CLASSIC = (Cell.rnn, Cell.lstm, Cell.gru)


@dataclass(frozen=True)
class GradWeights:
    """One layer and direction: the forward's packed weights and the backward's unscaled rows (gate order packed)."""

    packed: Weights
    w_ih: np.ndarray  # (G*H, in_features): PyTorch's weight_ih rows in the packed gate order
    w_hh: np.ndarray  # (G*H, H_out)
    w_hr: np.ndarray | None  # (P, H) for a projecting LSTM


@dataclass
class Tape:
    """What one layer and direction's backward needs, time-major (T, B, ...) and indexed by real time t."""

    inp: np.ndarray  # (T, B, in_features): the layer's input
    out: np.ndarray  # (T, B, D*H_out): the layer's output, every direction; this one's is ``h``
    direction: int  # 0 forward, 1 reverse (processes t = T-1 .. 0)
    h_out: int
    gates: np.ndarray | None = None  # LSTM (T, B, 4H) i, f, o, g; GRU (T, B, 3H) r, z, n: activations
    c: np.ndarray | None = None  # LSTM c_t (T, B, H)
    tanh_c: np.ndarray | None = None  # LSTM tanh(c_t)
    m: np.ndarray | None = None  # projected LSTM: o * tanh(c_t), before the projection (T, B, H)
    hn: np.ndarray | None = None  # GRU: W_hn h_{t-1} + b_hn (T, B, H)

    @property
    def h(self) -> np.ndarray:
        """This direction's h_t for every t (a strided view of ``out``)."""
        d = self.direction
        return self.out[:, :, d * self.h_out : (d + 1) * self.h_out]

    @property
    def nbytes(self) -> int:
        """Bytes this direction saves beyond the layer's input and output sequences."""
        return sum(a.nbytes for a in (self.gates, self.c, self.tanh_c, self.m, self.hn) if a is not None)


@dataclass
class Recording:
    """A forward with its tapes: ``outputs`` in the job's layout, ``tapes[layer][direction]``."""

    outputs: Outputs
    tapes: list[list[Tape]]


def prepare_weights(cfg: RunConfig, params: dict[str, np.ndarray]) -> list[list[GradWeights]]:
    """net[layer][direction]: numpy_ref's packed weights plus the rows the backward multiplies."""
    rows, _ = gate_order(cfg)
    packed = pack(cfg, params)
    net = []
    for layer, row in enumerate(packed):
        net.append([])
        for d, w in enumerate(row):
            s = suffix(layer, d)
            w_hr = params.get(f"weight_hr{s}")
            net[layer].append(
                GradWeights(
                    packed=w,
                    w_ih=np.ascontiguousarray(params[f"weight_ih{s}"][rows]),
                    w_hh=np.ascontiguousarray(params[f"weight_hh{s}"][rows]),
                    w_hr=None if w_hr is None else np.ascontiguousarray(w_hr),
                )
            )
    return net


def _time_major(cfg: RunConfig, a: np.ndarray) -> np.ndarray:
    return a.swapaxes(0, 1) if cfg.batch_first else a


# ----------------------------------------------------------------------------------------------
# Forward with a tape


def record(cfg: RunConfig, net: list[list[GradWeights]], x: np.ndarray) -> Recording:
    """The forward of every layer and direction, keeping each one's tape."""
    with np.errstate(over="ignore"):
        seq = np.ascontiguousarray(_time_major(cfg, x))
        ho, n_dir = out_size(cfg), directions(cfg)
        h_n, c_n, tapes = [], [], []
        for row in net:
            out = np.empty(seq.shape[:2] + (n_dir * ho,), x.dtype)
            tapes.append([])
            for d, w in enumerate(row):
                tape = Tape(inp=seq, out=out, direction=d, h_out=ho)
                _RECORDERS[cfg.cell](cfg, w, tape)
                last = 0 if d else -1  # the reverse direction ends at t = 0
                h_n.append(tape.h[last])
                if tape.c is not None:
                    c_n.append(tape.c[last])
                tapes[-1].append(tape)
            seq = out
    outputs = Outputs(_time_major(cfg, seq), np.stack(h_n), np.stack(c_n) if c_n else None)
    return Recording(outputs, tapes)


def _projection(w: GradWeights, seq: np.ndarray) -> np.ndarray:
    """x W_ih^T + bias for every timestep, in the packed (scaled) layout: (T, B, G*H)."""
    xw = seq.reshape(-1, seq.shape[-1]) @ w.packed.w_ih_t
    if w.packed.bias_x is not None:
        xw += w.packed.bias_x
    return xw.reshape(seq.shape[:2] + (-1,))


def _order(tape: Tape) -> range:
    """The timesteps in the order the forward processes them."""
    steps = tape.inp.shape[0]
    return range(steps - 1, -1, -1) if tape.direction else range(steps)


def _record_rnn(cfg: RunConfig, w: GradWeights, tape: Tape) -> None:
    # The output sequence is the whole tape: tanh' = 1 - h^2 and relu' = [h > 0] come from h itself.
    xw = _projection(w, tape.inp)
    dest = tape.h
    gates = np.empty(xw.shape[1:], xw.dtype)
    h = np.zeros((xw.shape[1], tape.h_out), xw.dtype)
    for t in _order(tape):
        rnn_step(cfg, w.packed, xw[t], h, None, gates, None, dest[t])
        h = dest[t]


def _record_lstm(cfg: RunConfig, w: GradWeights, tape: Tape) -> None:
    # The input projection is computed straight into the gate tape; each step adds its recurrent part.
    tape.gates = _projection(w, tape.inp)
    steps, batch, hs = tape.gates.shape[0], tape.gates.shape[1], cfg.hidden_size
    dt = tape.gates.dtype
    tape.c, tape.tanh_c = np.empty((steps, batch, hs), dt), np.empty((steps, batch, hs), dt)
    tape.m = np.empty((steps, batch, hs), dt) if w.w_hr is not None else None
    dest, tmp, hh = tape.h, np.empty((batch, hs), dt), np.empty((batch, 4 * hs), dt)
    h, c = np.zeros((batch, tape.h_out), dt), np.zeros((batch, hs), dt)
    for t in _order(tape):
        gates = tape.gates[t]
        gates += np.matmul(h, w.packed.w_hh_t, out=hh)
        sigmoid_of_negated(gates)  # packed pre-activations -a, -2a: now sigmoid(a_i, a_f, a_o), sigmoid(2 a_g)
        i, f, o, g = (gates[:, k * hs : (k + 1) * hs] for k in range(4))
        tanh_from_sigmoid(g)
        np.multiply(f, c, out=tape.c[t])  # c_t = f * c_{t-1} + i * g
        np.multiply(i, g, out=tmp)
        tape.c[t] += tmp
        c = tape.c[t]
        np.tanh(c, out=tape.tanh_c[t])
        if tape.m is None:
            np.multiply(o, tape.tanh_c[t], out=dest[t])
        else:
            np.multiply(o, tape.tanh_c[t], out=tape.m[t])
            np.matmul(tape.m[t], w.packed.w_hr_t, out=dest[t])
        h = dest[t]


def _record_gru(cfg: RunConfig, w: GradWeights, tape: Tape) -> None:
    # The input projection is computed straight into the gate tape; each step adds its recurrent part.
    tape.gates = _projection(w, tape.inp)
    steps, batch, hs = tape.gates.shape[0], tape.gates.shape[1], cfg.hidden_size
    dt = tape.gates.dtype
    tape.hn = np.empty((steps, batch, hs), dt)
    dest, hh = tape.h, np.empty((batch, 3 * hs), dt)
    h = np.zeros((batch, hs), dt)
    for t in _order(tape):
        gates = tape.gates[t]
        np.matmul(h, w.packed.w_hh_t, out=hh)
        rz, n = gates[:, : 2 * hs], gates[:, 2 * hs :]
        rz += hh[:, : 2 * hs]
        sigmoid_of_negated(rz)
        r, z = rz[:, :hs], rz[:, hs:]
        hn = hh[:, 2 * hs :]
        if w.packed.b_hn is not None:
            hn += w.packed.b_hn
        np.multiply(hn, -0.5, out=tape.hn[t])  # the packed n rows hold -2 * (W_hn h + b_hn): exact to undo
        n += np.multiply(hn, r, out=hn)  # x_n + r * (W_hn h + b_hn), packed
        tanh_from_sigmoid(sigmoid_of_negated(n))
        np.subtract(h, n, out=dest[t])  # h' = n + z * (h - n)
        dest[t] *= z
        dest[t] += n
        h = dest[t]


_RECORDERS = {Cell.rnn: _record_rnn, Cell.lstm: _record_lstm, Cell.gru: _record_gru}


# ----------------------------------------------------------------------------------------------
# One step of the recurrent adjoint: the loop body, and ``step_vjp`` for other callers.
# Each step forms its own local derivatives from the tape's row at t (one read of it, then work in
# cache-sized (B, G*H) buffers), rather than in whole-sequence passes over memory.


def _previous(tape: Tape, t: int) -> int | None:
    """The step processed just before t (t-1 forward, t+1 reverse), or None at the sequence's start."""
    k = t + 1 if tape.direction else t - 1
    return k if 0 <= k < tape.inp.shape[0] else None


def _scratch(cfg: RunConfig, batch: int, dtype) -> dict[str, np.ndarray]:
    hs = cfg.hidden_size
    return {name: np.empty((batch, hs), dtype) for name in ("m", "c", "u")} | {"s": np.empty((batch, 3 * hs), dtype)}


def _rnn_adjoint_step(cfg, w, tape, t, dh, dc, da_x, da_h, dh_prev, dc_prev, sc) -> None:
    h = tape.h[t]
    if cfg.nonlinearity is Nonlinearity.relu:
        np.multiply(dh, h > 0, out=da_x)  # relu' = [a > 0] = [h > 0] (torch's threshold_backward: 0 at a = 0)
    else:
        np.multiply(h, h, out=da_x)  # tanh' = 1 - h^2
        np.subtract(1, da_x, out=da_x)
        da_x *= dh
    if dh_prev is not None:
        np.matmul(da_x, w.w_hh, out=dh_prev)


def _lstm_adjoint_step(cfg, w, tape, t, dh, dc, da_x, da_h, dh_prev, dc_prev, sc) -> None:
    hs = cfg.hidden_size
    gates, tanh_c = tape.gates[t], tape.tanh_c[t]
    i, f, o, g = (gates[:, k * hs : (k + 1) * hs] for k in range(4))
    da_i, da_f, da_o, da_g = (da_x[:, k * hs : (k + 1) * hs] for k in range(4))
    dm = dh if w.w_hr is None else np.matmul(dh, w.w_hr, out=sc["m"])  # dL/d(o * tanh c)
    dct = np.multiply(tanh_c, tanh_c, out=sc["c"])  # dL/dc_t = dm * o * (1 - tanh(c)^2) + what step t+1 carries
    np.subtract(1, dct, out=dct)
    dct *= o
    dct *= dm
    dct += dc
    slope = np.subtract(1, gates[:, : 3 * hs], out=sc["s"])  # sigmoid' = s(1-s) of i, f, o at once
    slope *= gates[:, : 3 * hs]
    np.multiply(dct, g, out=da_i)
    da_i *= slope[:, :hs]
    k = _previous(tape, t)
    if k is None:
        da_f[...] = 0  # c_{t-1} = 0
    else:
        np.multiply(dct, tape.c[k], out=da_f)
        da_f *= slope[:, hs : 2 * hs]
    np.multiply(dm, tanh_c, out=da_o)
    da_o *= slope[:, 2 * hs :]
    np.multiply(g, g, out=da_g)  # tanh' = 1 - g^2
    np.subtract(1, da_g, out=da_g)
    da_g *= i
    da_g *= dct
    np.multiply(dct, f, out=dc_prev)
    if dh_prev is not None:
        np.matmul(da_x, w.w_hh, out=dh_prev)


def _gru_adjoint_step(cfg, w, tape, t, dh, dc, da_x, da_h, dh_prev, dc_prev, sc) -> None:
    # h' = (1 - z) n + z h, n = tanh(a_n), a_n = x_n + r * (W_hn h + b_hn).
    hs = cfg.hidden_size
    gates = tape.gates[t]
    r, z, n = (gates[:, k * hs : (k + 1) * hs] for k in range(3))
    da_r, da_z, d_hn = (da_h[:, k * hs : (k + 1) * hs] for k in range(3))
    da_n = da_x[:, 2 * hs :]
    one_minus_z = np.subtract(1, z, out=sc["u"])
    np.multiply(n, n, out=da_n)  # dA_n = dh * (1 - z) * (1 - n^2)
    np.subtract(1, da_n, out=da_n)
    da_n *= one_minus_z
    da_n *= dh
    np.multiply(z, one_minus_z, out=da_z)  # dA_z = dh * (h - n) * z(1 - z)
    k = _previous(tape, t)
    gap = np.negative(n, out=sc["c"]) if k is None else np.subtract(tape.h[k], n, out=sc["c"])
    da_z *= gap
    da_z *= dh
    np.subtract(1, r, out=da_r)  # dA_r = dA_n * (W_hn h + b_hn) * r(1 - r)
    da_r *= r
    da_r *= tape.hn[t]
    da_r *= da_n
    np.multiply(da_n, r, out=d_hn)  # the recurrent n rows see dA_n through r
    da_x[:, : 2 * hs] = da_h[:, : 2 * hs]
    if dh_prev is not None:
        through_w = np.matmul(da_h, w.w_hh, out=sc["m"])
        np.multiply(dh, z, out=dh_prev)
        dh_prev += through_w


_ADJOINT_STEPS = {Cell.rnn: _rnn_adjoint_step, Cell.lstm: _lstm_adjoint_step, Cell.gru: _gru_adjoint_step}


def step_vjp(
    cfg: RunConfig, w: GradWeights, tape: Tape, t: int, dh: np.ndarray, dc: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """One step's vector-Jacobian product: (dL/dh_{t-1}, dL/dc_{t-1} or None, dL/d(input_t)).

    ``dh`` is the total dL/dh_t (B, H_out), what the output at t receives plus what step t+1 passes
    back; ``dc`` is dL/dc_t carried from step t+1 (LSTM; None = zeros). "t-1" is the previous step in
    this direction's processing order (t+1 in time for the reverse direction); dL/d(input_t) is
    (B, in_features). The arithmetic is the backward loop's own.
    """
    hs, ho, batch = cfg.hidden_size, out_size(cfg), dh.shape[0]
    dt = tape.out.dtype
    da_x = np.empty((batch, GATES[cfg.cell] * hs), dt)
    da_h = np.empty_like(da_x) if cfg.cell is Cell.gru else da_x
    dh_prev = np.empty((batch, ho), dt)
    lstm = cfg.cell is Cell.lstm
    dc_prev = np.empty((batch, hs), dt) if lstm else None
    if lstm and dc is None:
        dc = np.zeros((batch, hs), dt)
    step = _ADJOINT_STEPS[cfg.cell]
    step(cfg, w, tape, t, np.asarray(dh, dt), dc, da_x, da_h, dh_prev, dc_prev, _scratch(cfg, batch, dt))
    return dh_prev, dc_prev, da_x @ w.w_ih


# ----------------------------------------------------------------------------------------------
# The backward


@dataclass
class Adjoint:
    """One layer and direction's dL/d(gate pre-activations) for every step, time-major (T, B, G*H)."""

    da_x: np.ndarray  # what the input projection saw (its weight, bias_ih, and the layer input read it)
    da_h: np.ndarray  # what the recurrent product saw (the same array but for GRU's n gate)
    dh: np.ndarray | None  # projected LSTM: the total dL/dh_t (T, B, P), for dW_hr


def adjoint(
    cfg: RunConfig, w: GradWeights, tape: Tape, dy: np.ndarray, dh_last: np.ndarray, dc_last: np.ndarray | None
) -> Adjoint:
    """The recurrent adjoint: dy (T, B, H_out) is dL/d(this direction's output); dh_last, dc_last of the final state."""
    steps, batch = dy.shape[:2]
    dt, hs, ho = tape.out.dtype, cfg.hidden_size, out_size(cfg)
    da_x = np.empty((steps, batch, GATES[cfg.cell] * hs), dt)
    da_h = np.empty_like(da_x) if cfg.cell is Cell.gru else da_x
    dh_all = np.empty((steps, batch, ho), dt) if w.w_hr is not None else None
    carry, dh = np.array(dh_last, dt), np.empty((batch, ho), dt)
    lstm = cfg.cell is Cell.lstm
    dc = (np.zeros((batch, hs), dt) if dc_last is None else np.array(dc_last, dt)) if lstm else None
    dc_prev = np.empty((batch, hs), dt) if lstm else None
    scratch, step = _scratch(cfg, batch, dt), _ADJOINT_STEPS[cfg.cell]
    backwards = list(reversed(_order(tape)))
    for n, t in enumerate(backwards):
        dh_t = dh if dh_all is None else dh_all[t]
        np.add(dy[t], carry, out=dh_t)
        last = n == len(backwards) - 1  # dL/dh_0 would go to the zero initial state: not formed
        step(cfg, w, tape, t, dh_t, dc, da_x[t], da_h[t], None if last else carry, dc_prev, scratch)
        dc, dc_prev = dc_prev, dc
    return Adjoint(da_x, da_h, dh_all)


def _rows_back(cfg: RunConfig, packed_rows: np.ndarray) -> np.ndarray:
    """A gradient whose rows are in the packed gate order, in PyTorch's order."""
    rows, _ = gate_order(cfg)
    out = np.empty_like(packed_rows)
    out[rows] = packed_rows
    return out


def _flat(a: np.ndarray) -> np.ndarray:
    """(T, B, F) as (T*B, F): a view for every slice used here (rows of one step stay adjacent)."""
    return a.reshape(-1, a.shape[-1])


def weight_grads(cfg: RunConfig, tape: Tape, adj: Adjoint, s: str) -> dict[str, np.ndarray]:
    """Every parameter gradient of one layer and direction (suffix ``s``), each one matrix product over T*B rows."""
    da_x, da_h = _flat(adj.da_x), _flat(adj.da_h)
    # dW_hh = sum_t dA_t^T h_{t-1}: the first processed step reads h = 0, so pair the other steps with
    # their predecessors by shifting views, without forming the shifted sequence.
    if tape.direction:
        steps, prev = adj.da_h[:-1], tape.h[1:]
    else:
        steps, prev = adj.da_h[1:], tape.h[:-1]
    grads = {
        f"weight_ih{s}": _rows_back(cfg, da_x.T @ _flat(tape.inp)),
        f"weight_hh{s}": _rows_back(cfg, _flat(steps).T @ _flat(prev)),
    }
    if cfg.bias:
        ones = np.ones(da_x.shape[0], da_x.dtype)  # column sums as a GEMV: ~5x faster than sum(axis=0) here
        grads[f"bias_ih{s}"] = _rows_back(cfg, ones @ da_x)
        grads[f"bias_hh{s}"] = _rows_back(cfg, ones @ da_h) if da_h is not da_x else grads[f"bias_ih{s}"].copy()
    if adj.dh is not None:
        grads[f"weight_hr{s}"] = _flat(adj.dh).T @ _flat(tape.m)
    return grads


def backward(
    cfg: RunConfig,
    net: list[list[GradWeights]],
    rec: Recording,
    d_output: np.ndarray,
    d_h_n: np.ndarray,
    d_c_n: np.ndarray | None = None,
    want_x: bool = True,
    want_params: bool = True,
) -> dict[str, np.ndarray]:
    """Gradients from a recording: ``"x"`` if ``want_x``, every parameter (PyTorch's names) if ``want_params``."""
    ho, n_dir = out_size(cfg), directions(cfg)
    grads: dict[str, np.ndarray] = {}
    d_seq = np.ascontiguousarray(_time_major(cfg, d_output))  # dL/d(this layer's output), time-major
    with np.errstate(over="ignore"):
        for layer in reversed(range(cfg.layers)):
            d_inp = None
            for d, tape in enumerate(rec.tapes[layer]):
                k, w = layer * n_dir + d, net[layer][d]
                dc = d_c_n[k] if d_c_n is not None and cfg.cell is Cell.lstm else None
                adj = adjoint(cfg, w, tape, d_seq[:, :, d * ho : (d + 1) * ho], d_h_n[k], dc)
                if want_params:
                    grads.update(weight_grads(cfg, tape, adj, suffix(layer, d)))
                if layer > 0 or want_x:
                    part = adj.da_x.reshape(-1, adj.da_x.shape[-1]) @ w.w_ih
                    d_inp = part if d_inp is None else np.add(d_inp, part, out=d_inp)
            if d_inp is not None:
                d_seq = d_inp.reshape(rec.tapes[layer][0].inp.shape)
    if want_x:
        grads["x"] = np.ascontiguousarray(_time_major(cfg, d_seq))
    order = (["x"] if want_x else []) + (list(param_shapes(cfg)) if want_params else [])
    return {name: grads[name] for name in order}


def saved_bytes(cfg: RunConfig) -> int:
    """Bytes a recording holds for the backward: the input, every layer's output and each direction's tape.

    With T*B step-rows, L layers, D directions, H = hidden_size, H_out = proj_size or H, I = input_size
    and s the dtype's itemsize: ``T*B*s * (I + L*D*(H_out + k))``, k per direction: rnn 0 (tanh' and
    relu' come from h itself), lstm 6H (gates, c, tanh c) plus H with a projection (o * tanh c), gru 4H
    (gates, W_hn h + b_hn). Linear in timesteps: this is what training adds over inference.
    """
    hs = cfg.hidden_size
    if cfg.cell not in GATES_CLASSIC:  # a linear cell keeps its coefficients and states (rnnexp.linear.grad)
        k = GATES[cfg.cell] * hs
        per_row = cfg.input_size + cfg.layers * directions(cfg) * (out_size(cfg) + k)
        return cfg.timesteps * cfg.batch_size * per_row * itemsize(cfg)
    k = {Cell.rnn: 0, Cell.lstm: 6 * hs + (hs if cfg.proj_size else 0), Cell.gru: 4 * hs}[cfg.cell]
    per_row = cfg.input_size + cfg.layers * directions(cfg) * (out_size(cfg) + k)
    return cfg.timesteps * cfg.batch_size * per_row * itemsize(cfg)


def _upcast(a: np.ndarray | None) -> np.ndarray | None:
    return None if a is None else np.asarray(a, np.float64)


def gradients(
    cfg: RunConfig,
    params: dict[str, np.ndarray],
    x: np.ndarray,
    d_output: np.ndarray,
    d_h_n: np.ndarray,
    d_c_n: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """The float64 gradient of L on exactly the numbers given (upcast): ``"x"`` and every parameter."""
    p64 = {k: v.astype(np.float64) for k, v in params.items()}
    net = prepare_weights(cfg, p64)
    rec = record(cfg, net, x.astype(np.float64))
    return backward(cfg, net, rec, _upcast(d_output), _upcast(d_h_n), _upcast(d_c_n))


def prepare_training(
    cfg: RunConfig,
    params: dict[str, np.ndarray],
    x: np.ndarray,
    d_output: np.ndarray,
    d_h_n: np.ndarray,
    d_c_n: np.ndarray | None = None,
):
    """The numpy backend's training step, in the job's dtype (``rnnexp.backends.PreparedTraining``)."""
    net = prepare_weights(cfg, params)  # once, like the inference forward's packing: not timed

    def phase(want_x: bool, want_params: bool) -> Callable[[Recording], dict[str, np.ndarray]]:
        return lambda rec: backward(cfg, net, rec, d_output, d_h_n, d_c_n, want_x, want_params)

    def step() -> tuple[Outputs, dict[str, np.ndarray]]:
        rec = record(cfg, net, x)
        return rec.outputs, backward(cfg, net, rec, d_output, d_h_n, d_c_n)

    return PreparedTraining(
        step=step,
        forward=lambda: record(cfg, net, x),
        backward_data=phase(True, False),
        backward_weights=phase(False, True),
        fetch=lambda result: result,
        fetch_grads=lambda grads: grads,
    )
