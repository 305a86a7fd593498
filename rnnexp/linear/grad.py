"""Backpropagation through a linear cell by hand: the float64 reference gradient and the numpy training step.

The loss is ``L = sum(output * d_output) + sum(h_n * d_h_n)``. Per layer and direction (top layer first):

1. the readout's adjoint gives g_h = dL/dh_t (lru: complex, g = dL/dRe h + i dL/dIm h, PyTorch's convention);
2. the recurrence's adjoint is a reverse scan of the same kind, G_t = g_h_t + conj(a_{t+1}) G_{t+1},
   computed with ``scans.scan`` on the reversed sequence, so every scan order has its adjoint;
3. g_a_t = G_t conj(h_{t-1}), g_b_t = G_t, and each cell's coefficient adjoint gives the parameters' and
   the input's gradients (``_coefficient_adjoint``); a lower layer receives dL/d(its output) from them.

Gradients come out named and shaped as ``cells.param_shapes``, plus ``x`` in the job's layout.
"""

from __future__ import annotations

import numpy as np

from rnnexp.backends import Outputs, PreparedTraining
from rnnexp.config import Cell, RunConfig, Scan
from rnnexp.linear import cells, network, ops, scans
from rnnexp.params import directions, suffix

NP = ops.for_numpy()


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return NP.sigmoid(x)


def _sum_tb(a: np.ndarray) -> np.ndarray:
    return a.sum(axis=(0, 1))


def reverse_scan(a: np.ndarray, g: np.ndarray, kind: Scan, chunk: int) -> np.ndarray:
    """G_t = g_t + conj(a_{t+1}) G_{t+1}, G_{T-1} = g_{T-1}: the adjoint of the forward scan, by the same order."""
    shifted = np.concatenate([np.conj(a[1:]), np.zeros_like(a[:1])])
    return scans.scan(shifted[::-1], g[::-1], NP, kind, chunk)[::-1]


def _readout_adjoint(cfg: RunConfig, p: dict, part: network.Part, gy: np.ndarray):
    """(g_h, parameter gradients, g_u, g_aux) of the readout y(h, u)."""
    h = part.states
    if cfg.cell in (Cell.mingru, Cell.minlstm):
        return gy, {}, None, {}
    if cfg.cell is Cell.lru:
        g_h = gy @ p["C_re"] - 1j * (gy @ p["C_im"])
        grads = {
            "C_re": np.einsum("tbh,tbn->hn", gy, h.real),
            "C_im": -np.einsum("tbh,tbn->hn", gy, h.imag),
            "D": np.einsum("tbh,tbi->hi", gy, part.u),
        }
        return g_h, grads, gy @ p["D"], {}
    c_t, v = part.aux["c_t"], part.aux["v"]
    g_h = gy[..., None] * c_t[:, :, None, :]
    g_aux = {"c_t": np.einsum("tbh,tbhn->tbn", gy, h), "v": gy * p["D"]}
    return g_h, {"D": _sum_tb(gy * v)}, None, g_aux


def _dense(grads: dict, g_out: np.ndarray, inp: np.ndarray, weight: str, bias: str | None, p: dict) -> np.ndarray:
    """Gradients of out = inp W^T (+ b): W and b into ``grads``; returns dL/d(inp)."""
    grads[weight] = np.einsum("tbo,tbi->oi", g_out, inp)
    if bias is not None and bias in p:
        grads[bias] = _sum_tb(g_out)
    return g_out @ p[weight]


def _coefficient_adjoint(cfg: RunConfig, p: dict, part: network.Part, g_a, g_b, grads: dict, g_aux: dict):
    """The parameters' gradients (into ``grads``) and dL/du from the coefficients' cotangents."""
    u, hs = part.u, cfg.hidden_size
    if cfg.cell in (Cell.mingru, Cell.minlstm):
        k = NP.linear(u, p["weight_ih"], p.get("bias_ih"))
        k_h = k[..., hs:] if cfg.cell is Cell.mingru else k[..., 2 * hs :]
        h_tilde, dh = (cells.g(k_h, NP), cells.g_prime(k_h, NP)) if cfg.log_space else (k_h, 1.0)
        if cfg.cell is Cell.mingru:
            z = _sigmoid(k[..., :hs])
            g_z = g_b * h_tilde - g_a
            g_k = np.concatenate([g_z * z * (1 - z), g_b * z * dh], axis=-1)
        else:
            f, i = _sigmoid(k[..., :hs]), _sigmoid(k[..., hs : 2 * hs])
            s = f + i
            g_c = g_b * h_tilde
            g_f, g_i = (g_a - g_c) * i / s**2, (g_c - g_a) * f / s**2
            g_k = np.concatenate([g_f * f * (1 - f), g_i * i * (1 - i), g_b * i / s * dh], axis=-1)
        return _dense(grads, g_k, u, "weight_ih", "bias_ih", p)
    if cfg.cell is Cell.lru:
        lam = np.exp(-np.exp(p["nu_log"]) + 1j * np.exp(p["theta_log"]))
        gamma = np.exp(p["gamma_log"])
        bu = NP.linear(u, p["B_re"]) + 1j * NP.linear(u, p["B_im"])
        g_w = _sum_tb(g_a) * np.conj(lam)  # lambda = exp(w): the holomorphic chain rule
        grads["nu_log"] = g_w.real * -np.exp(p["nu_log"])
        grads["theta_log"] = g_w.imag * np.exp(p["theta_log"])
        grads["gamma_log"] = _sum_tb((g_b * np.conj(bu)).real) * gamma
        g_bu = g_b * gamma
        g_u = _dense(grads, g_bu.real, u, "B_re", None, p) + _dense(grads, g_bu.imag, u, "B_im", None, p)
        return g_u
    n, r = cfg.state_size, cells.dt_rank(cfg)
    v = part.aux["v"]
    xdbl = NP.linear(v, p["x_proj_weight"])
    dtl, b_t = xdbl[..., :r], xdbl[..., r : r + n]
    z_dt = NP.linear(dtl, p["dt_proj_weight"], p["dt_proj_bias"])
    delta = NP.softplus(z_dt)
    big_a = -np.exp(p["A_log"])
    g_da = g_a * part.a  # a = exp(delta A)
    grads["A_log"] = np.einsum("tbhn,tbh->hn", g_da, delta) * big_a
    g_w = np.einsum("tbhn,tbn->tbh", g_b, b_t)  # b = (delta v) B_t
    g_bt = np.einsum("tbhn,tbh->tbn", g_b, delta * v)
    g_delta = np.einsum("tbhn,hn->tbh", g_da, big_a) + g_w * v
    g_v = g_aux["v"] + g_w * delta
    g_dtl = _dense(grads, g_delta * _sigmoid(z_dt), dtl, "dt_proj_weight", "dt_proj_bias", p)
    g_xdbl = np.concatenate([g_dtl, g_bt, g_aux["c_t"]], axis=-1)
    g_v = g_v + _dense(grads, g_xdbl, v, "x_proj_weight", None, p)
    return _dense(grads, g_v, u, "in_proj_weight", "in_proj_bias", p)


def part_backward(cfg: RunConfig, p: dict, part: network.Part, gy: np.ndarray, kind: Scan, chunk: int):
    """One part's parameter gradients (bare names) and dL/du (T, B, I), all in processing order."""
    g_h, grads, g_u, g_aux = _readout_adjoint(cfg, p, part, gy)
    big_g = reverse_scan(part.a, g_h, kind, chunk)
    h_prev = np.concatenate([np.zeros_like(part.states[:1]), part.states[:-1]])
    g_a = big_g * np.conj(h_prev)
    g_u_coef = _coefficient_adjoint(cfg, p, part, g_a, big_g, grads, g_aux)
    g_u = g_u_coef if g_u is None else g_u + g_u_coef
    return grads, g_u, big_g


def record(cfg: RunConfig, params: dict, x: np.ndarray, kind: Scan | None = None):
    """The forward with every part kept: (Outputs, parts)."""
    with np.errstate(over="ignore", under="ignore"):
        output, h_n, layers, parts = network.forward(cfg, params, x, NP, kind, keep=True)
    return Outputs(output, h_n, None, layers), parts


def backward(
    cfg: RunConfig,
    params: dict,
    rec,
    d_output: np.ndarray,
    d_h_n: np.ndarray,
    kind: Scan | None = None,
    state_grads: dict | None = None,
):
    """Every gradient (``x`` and each parameter by its full name) of a recorded forward.

    ``state_grads``, when given, receives dL/dh_t of each part by (layer, direction), in processing order.
    """
    kind = cfg.scan if kind is None else kind
    _, parts = rec
    n_dir, hs = directions(cfg), cfg.hidden_size
    g_seq = d_output.swapaxes(0, 1) if cfg.batch_first else d_output  # dL/d(top layer output), time-major
    grads: dict[str, np.ndarray] = {}
    with np.errstate(over="ignore", under="ignore"):
        for layer in reversed(range(cfg.layers)):
            g_in = None
            for d in range(n_dir):
                part = parts[layer][d]
                gy = g_seq[:, :, d * hs : (d + 1) * hs]
                gy = np.array(gy[::-1] if d else gy, dtype=part.y.dtype)  # processing order, a copy we may add to
                gy[-1] += d_h_n[layer * n_dir + d]
                p = cells.part_params(cfg, params, layer, d)
                g_part, g_u, big_g = part_backward(cfg, p, part, gy, kind, cfg.scan_chunk)
                if state_grads is not None:
                    state_grads[layer, d] = big_g
                s = suffix(layer, d)
                grads.update({name + s: np.asarray(g.real, part.y.dtype) for name, g in g_part.items()})
                g_u = g_u[::-1] if d else g_u
                g_in = g_u if g_in is None else g_in + g_u
            g_seq = g_in
    grads["x"] = g_seq.swapaxes(0, 1) if cfg.batch_first else g_seq
    ordered = {"x": grads.pop("x")}
    ordered.update({name: grads[name] for name in cells.param_shapes(cfg)})
    return ordered


def gradients(cfg: RunConfig, params: dict, x: np.ndarray, d_output: np.ndarray, d_h_n: np.ndarray) -> dict:
    """The float64 reference gradient: the sequential scan and its sequential adjoint, on the upcast numbers."""
    p64 = {k: np.asarray(v, np.float64) for k, v in params.items()}
    x64, do64, dh64 = (np.asarray(a, np.float64) for a in (x, d_output, d_h_n))
    rec = record(cfg, p64, x64, Scan.sequential)
    return backward(cfg, p64, rec, do64, dh64, Scan.sequential)


def prepare_training(cfg: RunConfig, params: dict, x: np.ndarray, d_output, d_h_n, d_c_n=None):
    """The numpy backend's training step in the job's dtype and scan. Both backward phases run the whole
    backward (its input and weight gradients share the adjoint scan) and keep their own share."""

    def step():
        rec = record(cfg, params, x)
        return Outputs(rec[0].output, rec[0].h_n), backward(cfg, params, rec, d_output, d_h_n)

    def phase(want_x: bool):
        def run(rec):
            grads = backward(cfg, params, rec, d_output, d_h_n)
            return {k: v for k, v in grads.items() if (k == "x") == want_x}

        return run

    return PreparedTraining(
        step=step,
        forward=lambda: record(cfg, params, x),
        backward_data=phase(True),
        backward_weights=phase(False),
        fetch=lambda result: result,
        fetch_grads=lambda grads: grads,
    )
