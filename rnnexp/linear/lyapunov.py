"""Exact Lyapunov exponents of a linear cell: time averages of ln|a_t|.

For h_t = a_t * h_{t-1} + b_t with a_t and b_t functions of the input alone, the one-step Jacobian of a
layer's state is diag(a_t); a stack's is block lower triangular (a layer reads the one below at the
same step), so its spectrum is the union of the diagonal blocks': the exponents are the time averages
of ln|a_t,i| over every state element i of every layer (the steps after ``lyapunov_warmup``), largest
first. An lru element is complex: as two real coordinates its block is |lambda| times a rotation, two
exponents ln|lambda| each; s6's state has H*N elements per layer. ``tests/test_linear_dynamics.py``
checks these against the QR method on Jacobians formed by torch.autograd.

jac_sigma_max_* (the largest singular value of J_t): max_i |a_t,i| for one layer; NaN for a stack,
whose off-diagonal blocks this does not form.

Gradient flow (``grad_flow``): L = <u, the top layer's last output> (what h_n holds; u the seeded unit
vector of ``rnnexp.exponents.unit_vector``), and ln ||dL/dh_t|| for every layer's state, from the
hand-written BPTT's reverse scan (``grad.backward``: the total derivative, through the upper layers too).
These adjoints only contract (|a_t| <= 1), so no rescaling is needed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rnnexp.config import Cell, ConfigError, RunConfig, Scan
from rnnexp.exponents import kaplan_yorke, log_slope, unit_vector
from rnnexp.jacobians import check_causal
from rnnexp.linear import grad, network, ops
from rnnexp.params import directions
from rnnexp.stats import DIRECTIONS

NP = ops.for_numpy()


def element_count(cfg: RunConfig) -> int:
    """Real coordinates of one layer's state: H (mingru, minlstm), 2N (lru, complex), H*N (s6)."""
    if cfg.cell is Cell.lru:
        return 2 * cfg.state_size
    return cfg.hidden_size * (cfg.state_size if cfg.cell is Cell.s6 else 1)


def state_size(cfg: RunConfig) -> int:
    """Real coordinates of one direction's state, every layer."""
    return cfg.layers * element_count(cfg)


def check(cfg: RunConfig) -> None:
    if not (cfg.lyapunov_k or cfg.grad_flow):
        return
    check_causal(cfg, "lyapunov_k" if cfg.lyapunov_k else "grad_flow")
    if not cfg.lyapunov_k:
        return
    if cfg.lyapunov_k > state_size(cfg):
        raise ConfigError("lyapunov_k", cfg.lyapunov_k, f"at most the state size {state_size(cfg)} (layers x state)")
    if cfg.lyapunov_warmup >= cfg.timesteps:
        allowed = f"must be < timesteps ({cfg.timesteps}): the exponents average the steps after the warm-up"
        raise ConfigError("lyapunov_warmup", cfg.lyapunov_warmup, allowed)


def log_moduli(cfg: RunConfig, params: dict, x: np.ndarray) -> list[np.ndarray]:
    """Per direction, ln|a_t| of the batch's first sequence: (T, state_size) in processing order, float64."""
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    x0 = np.asarray(x[:1] if cfg.batch_first else x[:, :1], np.float64)
    with np.errstate(divide="ignore", over="ignore", under="ignore"):
        _, _, _, parts = network.forward(cfg, p, x0, NP, keep=True)
        out = []
        for d in range(directions(cfg)):
            logs = []
            for row in parts:
                a = np.broadcast_to(row[d].a, row[d].b.shape)[:, 0]  # (T, elements)
                la = np.log(np.abs(a)).reshape(a.shape[0], -1)
                logs.append(np.repeat(la, 2, axis=1) if cfg.cell is Cell.lru else la)
            out.append(np.concatenate(logs, axis=1))
    return out


def dynamics_columns(cfg: RunConfig, params: dict, x: np.ndarray) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """The row's lyap_* and jac_sigma_max_* columns, ``lyapunov.csv``'s table, and an empty gradient table."""
    check(cfg)
    lyap = pd.DataFrame(columns=["direction", "index", "exponent"])
    grads = pd.DataFrame(columns=["layer", "direction", "timestep", "grad_log_norm"])
    row: dict = {}
    if cfg.grad_flow:
        row["grad_norm_log_slope"], grads = grad_flow(cfg, params, x)
    if not cfg.lyapunov_k:
        return row, lyap, grads
    logs = [la[cfg.lyapunov_warmup :] for la in log_moduli(cfg, params, x)]
    spectra = [np.sort(la.mean(axis=0))[::-1][: cfg.lyapunov_k] for la in logs]
    joint = np.sort(np.concatenate(spectra))[::-1][: cfg.lyapunov_k]
    if cfg.layers == 1:
        sigma = np.exp(np.max([la.max(axis=1) for la in logs], axis=0))
        sigma_mean, sigma_max = float(sigma.mean()), float(sigma.max())
    else:
        sigma_mean = sigma_max = float("nan")
    row |= {
        "lyap_max": float(joint[0]),
        "lyap_sum": float(joint.sum()),
        "lyap_dim": kaplan_yorke(joint, state_size(cfg) * len(logs)),
        "jac_sigma_max_mean": sigma_mean,
        "jac_sigma_max_max": sigma_max,
    }
    lyap = pd.DataFrame(
        [(DIRECTIONS[d], i, e) for d, ex in enumerate(spectra) for i, e in enumerate(ex)], columns=lyap.columns
    )
    return row, lyap, grads


def grad_flow(cfg: RunConfig, params: dict, x: np.ndarray) -> tuple[float, pd.DataFrame]:
    """The top layer's log-norm slope against the distance to the end, and the long-form table (module docstring)."""
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    x0 = np.asarray(x[:1] if cfg.batch_first else x[:, :1], np.float64)
    rec = grad.record(cfg, p, x0, Scan.sequential)
    n_dir, hs, steps = directions(cfg), cfg.hidden_size, cfg.timesteps
    d_h_n = np.zeros((cfg.layers * n_dir, 1, hs))
    u = unit_vector(cfg)
    for d in range(n_dir):
        d_h_n[(cfg.layers - 1) * n_dir + d, 0] = u[d * hs : (d + 1) * hs]
    state_grads: dict = {}
    grad.backward(cfg, p, rec, np.zeros_like(rec[0].output), d_h_n, Scan.sequential, state_grads)
    frames, tops = [], []
    with np.errstate(divide="ignore"):
        for (layer, d), g in sorted(state_grads.items()):
            log_norm = np.log(np.linalg.norm(np.abs(g).reshape(steps, -1), axis=1))  # processing order
            position = np.arange(steps)[::-1] if d else np.arange(steps)
            part = {"layer": layer, "direction": DIRECTIONS[d], "timestep": position, "grad_log_norm": log_norm}
            frames.append(pd.DataFrame(part))
            if layer == cfg.layers - 1:
                tops.append(log_norm[::-1])  # by distance to the end of its direction
    joint = np.logaddexp.reduce(2 * np.stack(tops), axis=0) / 2
    table = pd.concat(frames, ignore_index=True).sort_values(["layer", "direction", "timestep"], ignore_index=True)
    return log_slope(joint), table
