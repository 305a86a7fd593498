"""The four linear cells: equations, parameter layout and initialisation, in one place.

Each layer and direction ("part") maps a time-major input u (T, B, I) to the pair (a, b) of its
recurrence h_t = a_t * h_{t-1} + b_t (h_0 = 0), and the states h to its output y (T, B, H),
H = hidden_size. a and b depend on the input alone; that is what makes the recurrence a scan.

- mingru (Feng et al. 2024, "Were RNNs All We Needed?", sec. 3.1): ``weight_ih`` (2H, I) rows z, h~;
  ``bias_ih`` (2H) with bias. z = sigmoid(W_z u + b_z), h~ = W_h u + b_h; a = 1 - z, b = z * h~; y = h.
- ``log_space`` (mingru, minlstm; ibid. sec. 3.3 and appendix B): h~ = g(W_h u + b_h) with g(x) = x + 0.5
  (x >= 0) or sigmoid(x) (x < 0), so that b > 0, and the parallel scans run on log a and log b
  (``scans.Log``: log h_t = logaddexp(log a_t + log h_{t-1}, log b_t)); the sequential loop on a and b.
- minlstm (ibid. sec. 3.2, with the normalised gates): ``weight_ih`` (3H, I) rows f, i, h~. f = sigmoid(.),
  i = sigmoid(.), f' = f / (f + i), i' = i / (f + i); a = f', b = i' * h~; y = h.
- lru (Orvieto et al. 2023, "Resurrecting Recurrent Neural Networks for Long Sequences"): complex state
  of N = state_size. ``nu_log``, ``theta_log``, ``gamma_log`` (N); ``B_re``, ``B_im`` (N, I); ``C_re``,
  ``C_im`` (H, N); ``D`` (H, I). lambda = exp(-exp(nu_log) + i exp(theta_log)), gamma = exp(gamma_log);
  a = lambda, b = gamma * (B u); y = Re(C h) + D u. D is the paper's skip; it is a full (H, I) matrix
  because a layer may change width (the paper's diagonal D when I = H is one such matrix).
- s6 (Gu & Dao 2023, Mamba; ``selective_scan_ref`` with delta_softplus, no z): H channels, N = state_size
  per channel, R = ceil(H / 16) (Mamba's dt_rank). ``in_proj_weight`` (H, I) [+ ``in_proj_bias`` (H)]
  makes the channels v = W_in u (+ b_in); ``x_proj_weight`` (R + 2N, H) gives [dt, B_t, C_t] = W_x v;
  delta = softplus(W_dt dt + b_dt) with ``dt_proj_weight`` (H, R), ``dt_proj_bias`` (H); A = -exp(``A_log``)
  (H, N). a = exp(delta A), b = delta B_t v (the discretisation of selective_scan_ref: zero-order hold
  for A, Euler for B), state (T, B, H, N); y = sum_n h C_t + ``D`` (H) * v.

Initialisation (``init=torch_default``: each paper's): mingru/minlstm and s6's in/x projections
``nn.Linear``'s U(+-1/sqrt(fan_in)); lru as the paper's code (lambda on the ring r_min <= |lambda| <=
r_max, phase U[0, max_phase); B ~ N(0, 1/(2I)) per part, C ~ N(0, 1/N) per part, D ~ N(0, 1/I) (the
paper's N(0, 1) scaled for a dense D), gamma_log = log sqrt(1 - |lambda|^2)); s6 as Mamba's (A_log =
log(1..N), D = 1, dt_proj_weight U(+-R^-1/2), dt_proj_bias the inverse softplus of dt ~ logU[1e-3, 0.1]).
``init_gain`` scales every dense weight. The other inits redraw the dense weights (``weight_ih``,
``in_proj``, ``x_proj``, ``dt_proj``, ``B``, ``C``, ``D`` matrices) by their scheme; the structural
parameters (lambda, gamma, A_log, D vector, dt bias) keep their papers' initialisation.

The maths is written once over an array library ``ops`` (``rnnexp.linear.ops``): numpy, torch, jax.
"""

from __future__ import annotations

import math

import numpy as np

from rnnexp.config import Cell, Init, RunConfig
from rnnexp.layout import directions, draw, suffix

DT_MIN, DT_MAX, DT_FLOOR = 1e-3, 1e-1, 1e-4  # Mamba's dt_min, dt_max, dt_init_floor


def dt_rank(cfg: RunConfig) -> int:
    return math.ceil(cfg.hidden_size / 16)


def part_shapes(cfg: RunConfig, in_size: int) -> dict[str, tuple[int, ...]]:
    """One layer and direction's parameter shapes, names without the ``_l{k}[_reverse]`` suffix."""
    h, n = cfg.hidden_size, cfg.state_size
    if cfg.cell in (Cell.mingru, Cell.minlstm):
        g = 2 if cfg.cell is Cell.mingru else 3
        return {"weight_ih": (g * h, in_size)} | ({"bias_ih": (g * h,)} if cfg.bias else {})
    if cfg.cell is Cell.lru:
        return {
            "nu_log": (n,),
            "theta_log": (n,),
            "gamma_log": (n,),
            "B_re": (n, in_size),
            "B_im": (n, in_size),
            "C_re": (h, n),
            "C_im": (h, n),
            "D": (h, in_size),
        }
    r = dt_rank(cfg)
    shapes = {"in_proj_weight": (h, in_size)} | ({"in_proj_bias": (h,)} if cfg.bias else {})
    return shapes | {
        "x_proj_weight": (r + 2 * n, h),
        "dt_proj_weight": (h, r),
        "dt_proj_bias": (h,),
        "A_log": (h, n),
        "D": (h,),
    }


def param_shapes(cfg: RunConfig) -> dict[str, tuple[int, ...]]:
    """Every part's shapes, layer-major, the reverse direction after the forward one (as nn.RNN orders them)."""
    shapes: dict[str, tuple[int, ...]] = {}
    for layer in range(cfg.layers):
        in_size = cfg.input_size if layer == 0 else directions(cfg) * cfg.hidden_size
        for d in range(directions(cfg)):
            s = suffix(layer, d)
            shapes.update({name + s: shape for name, shape in part_shapes(cfg, in_size).items()})
    return shapes


DENSE = ("weight_ih", "in_proj_weight", "x_proj_weight", "dt_proj_weight", "B_re", "B_im", "C_re", "C_im")


def draw_part(rng: np.random.Generator, cfg: RunConfig, in_size: int) -> dict[str, np.ndarray]:
    """One part's parameters in float64 (the module docstring's initialisation)."""
    shapes = part_shapes(cfg, in_size)
    g = cfg.init_gain
    out: dict[str, np.ndarray] = {}
    if cfg.cell is Cell.lru:
        n = cfg.state_size
        u1, u2 = rng.random(n), rng.random(n)
        out["nu_log"] = np.log(-0.5 * np.log(u1 * (cfg.r_max**2 - cfg.r_min**2) + cfg.r_min**2))
        out["theta_log"] = np.log(cfg.max_phase * np.maximum(u2, np.finfo(float).tiny))  # u2 = 0 would be log 0
        modulus = np.exp(-np.exp(out["nu_log"]))
        out["gamma_log"] = np.log(np.sqrt(1 - modulus**2))
        out["B_re"] = g * rng.normal(size=shapes["B_re"]) / math.sqrt(2 * in_size)
        out["B_im"] = g * rng.normal(size=shapes["B_im"]) / math.sqrt(2 * in_size)
        out["C_re"] = g * rng.normal(size=shapes["C_re"]) / math.sqrt(n)
        out["C_im"] = g * rng.normal(size=shapes["C_im"]) / math.sqrt(n)
        out["D"] = g * rng.normal(size=shapes["D"]) / math.sqrt(in_size)
    else:
        for name, shape in shapes.items():
            if name in ("weight_ih", "bias_ih", "in_proj_weight", "in_proj_bias", "x_proj_weight"):
                fan_in = in_size if name in ("weight_ih", "bias_ih", "in_proj_weight", "in_proj_bias") else shape[1]
                k = g / math.sqrt(fan_in)
                out[name] = rng.uniform(-k, k, shape)
        if cfg.cell is Cell.s6:
            r = dt_rank(cfg)
            out["dt_proj_weight"] = g * rng.uniform(-(r**-0.5), r**-0.5, shapes["dt_proj_weight"])
            dt = np.exp(rng.random(cfg.hidden_size) * (math.log(DT_MAX) - math.log(DT_MIN)) + math.log(DT_MIN))
            dt = np.maximum(dt, DT_FLOOR)
            out["dt_proj_bias"] = dt + np.log(-np.expm1(-dt))  # softplus(bias) = dt
            out["A_log"] = np.log(np.tile(np.arange(1, cfg.state_size + 1, dtype=float), (cfg.hidden_size, 1)))
            out["D"] = np.ones(cfg.hidden_size)
    if cfg.init is not Init.torch_default:
        for name, shape in shapes.items():
            if name in DENSE or (name == "D" and len(shape) == 2) or name in ("bias_ih", "in_proj_bias"):
                # one "gate" per block: orthogonal acts like xavier on these input-side matrices
                key = "bias_ih" if name.endswith("bias") or name.startswith("bias") else "weight_ih"
                out[name] = draw(rng, cfg, key, shape)
    return {name: out[name] for name in shapes}


def make_params(cfg: RunConfig) -> dict[str, np.ndarray]:
    """Seeded parameters in the job's dtype, named as ``param_shapes`` (``rnnexp.params.make_params`` calls this)."""
    rng = np.random.default_rng([cfg.seed, 0])
    dtype = np.dtype(cfg.dtype.value)
    params: dict[str, np.ndarray] = {}
    for layer in range(cfg.layers):
        in_size = cfg.input_size if layer == 0 else directions(cfg) * cfg.hidden_size
        for d in range(directions(cfg)):
            s = suffix(layer, d)
            params.update({name + s: v.astype(dtype) for name, v in draw_part(rng, cfg, in_size).items()})
    return params


def part_params(cfg: RunConfig, params: dict, layer: int, direction: int) -> dict:
    """One part's parameters by their bare names (``weight_ih``, not ``weight_ih_l0``)."""
    s = suffix(layer, direction)
    return {name: params[name + s] for name in part_shapes(cfg, 1)}


def coefficients(cfg: RunConfig, p: dict, u, ops):
    """(a, b, aux) for one part's time-major input ``u`` (T, B, I); aux holds what ``readout`` needs."""
    h = cfg.hidden_size
    if cfg.cell in (Cell.mingru, Cell.minlstm):
        k = ops.linear(u, p["weight_ih"], p.get("bias_ih"))
        k_h = k[..., h:] if cfg.cell is Cell.mingru else k[..., 2 * h :]
        h_tilde = g(k_h, ops) if cfg.log_space else k_h
        if cfg.cell is Cell.mingru:
            z = ops.sigmoid(k[..., :h])
            aux = {}
            if cfg.log_space:  # log(1 - z) = -softplus(k), log z = -softplus(-k)
                aux = {"log_a": -ops.softplus(k[..., :h]), "log_b": -ops.softplus(-k[..., :h]) + log_g(k_h, ops)}
            return 1 - z, z * h_tilde, aux
        f, i = ops.sigmoid(k[..., :h]), ops.sigmoid(k[..., h : 2 * h])
        s = f + i
        aux = {}
        if cfg.log_space:
            log_f, log_i = -ops.softplus(-k[..., :h]), -ops.softplus(-k[..., h : 2 * h])
            log_s = ops.logaddexp(log_f, log_i)
            aux = {"log_a": log_f - log_s, "log_b": log_i - log_s + log_g(k_h, ops)}
        return f / s, (i / s) * h_tilde, aux
    if cfg.cell is Cell.lru:
        lam = ops.exp(ops.complex(-ops.exp(p["nu_log"]), ops.exp(p["theta_log"])))
        bu = ops.complex(ops.linear(u, p["B_re"]), ops.linear(u, p["B_im"])) * ops.exp(p["gamma_log"])
        return ops.broadcast(lam, bu.shape), bu, {}
    n, r = cfg.state_size, dt_rank(cfg)
    v = ops.linear(u, p["in_proj_weight"], p.get("in_proj_bias"))
    xdbl = ops.linear(v, p["x_proj_weight"])
    delta = ops.softplus(ops.linear(xdbl[..., :r], p["dt_proj_weight"], p["dt_proj_bias"]))
    b_t, c_t = xdbl[..., r : r + n], xdbl[..., r + n :]
    a = ops.exp(delta[..., None] * -ops.exp(p["A_log"]))
    b = (delta * v)[..., None] * b_t[..., None, :]
    return a, b, {"v": v, "c_t": c_t}


def g(x, ops):
    """minGRU's positive activation for the log-space form: x + 0.5 for x >= 0, sigmoid(x) below."""
    return ops.where(x >= 0, x + 0.5, ops.sigmoid(x))


def log_g(x, ops):
    """log g(x), finite in both branches (so a gradient through ``where`` is never NaN). Not log(|x| + 0.5) nor
    log(relu(x) + 0.5): autograd takes their slope at x = 0 as 0, where g's right branch (the one x = 0 takes) has 1."""
    right = ops.where(x >= 0, x, 0 * x)
    return ops.where(x >= 0, ops.log(right + 0.5), -ops.softplus(-x))


def g_prime(x, ops):
    """g'(x): 1 for x >= 0, sigmoid'(x) below."""
    s = ops.sigmoid(x)
    return ops.where(x >= 0, 1.0 + 0 * x, s * (1 - s))


def readout(cfg: RunConfig, p: dict, u, states, aux, ops):
    """One part's output (T, B, H) from its states and input."""
    if cfg.cell in (Cell.mingru, Cell.minlstm):
        return states
    if cfg.cell is Cell.lru:
        return ops.linear(ops.real(states), p["C_re"]) - ops.linear(ops.imag(states), p["C_im"]) + ops.linear(u, p["D"])
    return ops.einsum("tbhn,tbn->tbh", states, aux["c_t"]) + p["D"] * aux["v"]
