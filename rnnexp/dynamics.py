"""Hidden-state dynamics beyond saturation: Lyapunov exponents, one-step Jacobian norms, gradient flow.

Computed after timing, in float64, along the reference's trajectory of the batch's first sequence
(``rnnexp.jacobians``: the state is every layer's h, and (h, c) for an LSTM; a single bidirectional
layer is two causal systems, one per direction; a deeper bidirectional stack is refused).

- Lyapunov spectrum (``lyapunov_k`` > 0): the QR method. A seeded orthonormal k-frame is pushed
  through each step's Jacobian J_t and re-orthonormalised (``numpy.linalg.qr``); the first
  ``lyapunov_warmup`` steps align the frame and are not averaged; the exponents are the mean of
  ln|diag R| over the remaining T - warmup steps (natural log, per step), largest first.
  warmup >= T is refused: there would be nothing to average, and a silent clamp would report a
  less converged number under the requested name.
- Largest singular value of each averaged step's J_t (the same Jacobians): Golub-Kahan-Lanczos
  bidiagonalisation of J_t from a seeded start, batched over steps (each step its own Krylov
  space), until every step's residual bound is within LANCZOS_RTOL of its estimate or after
  LANCZOS_MAX iterations. Exact (to rounding) when the state has at most LANCZOS_MAX entries;
  otherwise a lower bound, within 1e-5 of the SVD of the formed J_t in tests/test_dynamics.py
  (seen: <= 2e-6 relative for rnn, gru, lstm at H=256, gains 0.5-4).
- Gradient flow (``grad_flow``): L = <u, h_T> for a seeded unit vector u on the top layer's final
  state (all directions); dL/d(state of layer l at t) by J_t^T products (``jacobians.vjp``, the one
  per-step VJP: it agrees with the BPTT's ``numpy_grad.step_vjp`` to 1e-12 in the tests), the
  adjoint rescaled to unit norm every step with the log of the scale accumulated, so the log-norm
  stays finite where the norm would overflow. An LSTM's state is (h, c), its two coordinates
  independent: dL/dc_t holds h_t fixed (c_t's path through h_t is counted in dL/dh_t).

With two directions the row's columns describe both as one system (their Jacobians are
block-diagonal): the spectrum is the union of the directions' (its k largest), the step norm the
larger of the two at each step, the gradient norm that of both adjoints together.
``lyapunov.csv`` and the gradient table give each direction alone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator

import numpy as np
import pandas as pd

from rnnexp import jacobians as jac
from rnnexp.backends import Outputs
from rnnexp.config import Cell, ConfigError, RunConfig
from rnnexp.exponents import U_SEED, kaplan_yorke, log_slope, unit_vector
from rnnexp.linear import lyapunov as linear_lyapunov
from rnnexp.params import GATES, directions, out_size
from rnnexp.stats import DIRECTIONS

log = logging.getLogger(__name__)

LYAPUNOV_FILE = "lyapunov.csv"
LANCZOS_MAX = 64  # Krylov steps per Jacobian at most, for its largest singular value
LANCZOS_CHECK = 8  # test convergence every this many steps
LANCZOS_RTOL = 1e-3  # stop when every residual bound is within this of its estimate (the error is ~ its square)
CHUNK_ELEMENTS = 1 << 22  # coefficient or Lanczos-basis elements held at once (32 MiB in float64)
SEEDS = {"u": U_SEED, "frame": 3, "lanczos": 4}  # params use [seed, 0] and inputs [seed, 1]


LINEAR_CELLS = (Cell.mingru, Cell.minlstm, Cell.lru, Cell.s6)


# --- the QR method ---------------------------------------------------------------


def lyapunov_qr(maps: Iterable[Callable[[np.ndarray], np.ndarray]], frame: np.ndarray, warmup: int) -> np.ndarray:
    """The k largest exponents, largest first: ``maps`` apply each step's Jacobian to a (k, S) frame of rows.

    >>> m = np.diag([2.0, 0.5])
    >>> lyapunov_qr([lambda q: q @ m.T] * 10, np.eye(2), warmup=1).round(6).tolist()
    [0.693147, -0.693147]
    """
    total, n = np.zeros(frame.shape[0]), 0
    with np.errstate(divide="ignore"):  # a Jacobian of lower rank than k: that exponent is -inf
        for t, apply in enumerate(maps):
            q, r = np.linalg.qr(apply(frame).T)
            frame = q.T
            if t >= warmup:
                total += np.log(np.abs(np.diag(r)))
                n += 1
    return np.sort(total / n)[::-1] if n else np.full(frame.shape[0], np.nan)


# --- a System's steps ----------------------------------------------------------------------------------------


def chunk_len(sys: jac.System) -> int:
    """Steps per chunk: coefficients (~4 G*H per layer) and two Lanczos bases (2 x LANCZOS_MAX x S) per step."""
    per_step = max(GATES[sys.cell] * sys.hidden_size * 4 * len(sys.layers), 2 * LANCZOS_MAX * sys.size)
    return max(1, CHUNK_ELEMENTS // per_step)


def chunks(sys: jac.System, start: int = 0, reverse: bool = False) -> Iterator[tuple[int, list[dict]]]:
    """(t0, coefficients of steps t0..t0+n-1) over steps start..T-1, in time order or reversed."""
    n = chunk_len(sys)
    starts = range(start, sys.steps, n)
    for t0 in reversed(starts) if reverse else starts:
        yield t0, jac.coefficients(sys, t0, min(t0 + n, sys.steps))


def _length(co: list[dict[str, np.ndarray]]) -> int:
    """Steps in a chunk of coefficients."""
    return len(next(iter(co[0].values())))


def step_maps(sys: jac.System) -> Iterator[Callable[[np.ndarray], np.ndarray]]:
    """J_t as a function on (k, S) frames, for t = 0..T-1 (J_0 acts on the zero initial state)."""
    for _, co in chunks(sys):
        for j in range(_length(co)):
            step = jac.at(co, j)
            yield lambda v, step=step: jac.join(jac.jvp(sys, step, jac.split(sys, v)))


def spectrum(sys: jac.System, k: int, warmup: int, seed: int) -> np.ndarray:
    """The k largest exponents of one System, from a seeded orthonormal frame."""
    rng = np.random.default_rng([seed, SEEDS["frame"]])
    frame = np.linalg.qr(rng.standard_normal((sys.size, k)))[0].T
    return lyapunov_qr(step_maps(sys), frame, warmup)


def sigma_max(sys: jac.System, start: int, seed: int) -> np.ndarray:
    """Largest singular value of J_t for t = start..T-1 (module docstring: Lanczos, batched over steps)."""
    rng = np.random.default_rng([seed, SEEDS["lanczos"]])
    out = []
    for _, co in chunks(sys, start):

        def forward(v, co=co):
            return jac.join(jac.jvp(sys, co, jac.split(sys, v)))

        def backward(w, co=co):
            return jac.join(jac.vjp(sys, co, jac.split(sys, w))[1])

        n = _length(co)
        out.append(top_singular_values(forward, backward, rng.standard_normal((n, sys.size))))
    return np.concatenate(out) if out else np.array([])


def top_singular_values(
    forward: Callable[[np.ndarray], np.ndarray],
    backward: Callable[[np.ndarray], np.ndarray],
    v: np.ndarray,
    max_iters: int = LANCZOS_MAX,
    rtol: float = LANCZOS_RTOL,
) -> np.ndarray:
    """Largest singular value of each row's operator A_i (``forward``: rows v_i -> A_i v_i; ``backward``: A_i^T).

    Golub-Kahan-Lanczos bidiagonalisation from the start rows ``v``, with full reorthogonalisation
    (A itself, never A^T A, so a tiny A does not underflow); stops when every row's residual bound
    beta_{m+1} |x_m| is within ``rtol`` of its estimate, or after ``max_iters`` (at most the size:
    then exact). The estimate is a lower bound.
    """
    max_iters = min(max_iters, v.shape[1])
    scale = np.zeros(v.shape[0])  # the largest alpha or beta so far, per row
    vs = np.zeros((v.shape[0], max_iters + 1, v.shape[1]))  # the bases, one (m, S) block per row
    us = np.zeros((v.shape[0], max_iters, v.shape[1]))
    vs[:, 0] = _unit(v, scale)[1]
    alpha, beta = [], []
    for j in range(max_iters):
        p = forward(vs[:, j]) - (beta[-1][:, None] * us[:, j - 1] if j else 0.0)
        a, us[:, j] = _unit(_orthogonalise(p, us[:, :j]), scale)
        r = backward(us[:, j]) - a[:, None] * vs[:, j]
        b, vs[:, j + 1] = _unit(_orthogonalise(r, vs[:, : j + 1]), scale)
        scale = np.maximum(scale, np.maximum(a, b))
        alpha.append(a)
        beta.append(b)
        if (j + 1) % LANCZOS_CHECK == 0 or j + 1 == max_iters:
            sigma, residual = _ritz(alpha, beta)
            if np.all(residual <= rtol * sigma):
                break
    return sigma


def safe_norm(w: np.ndarray) -> np.ndarray:
    """L2 norm over the last axis that neither underflows nor overflows (squares of 1e-200 are 0 in float64)."""
    big = np.abs(w).max(axis=-1, keepdims=True)
    big = np.where(big > 0, big, 1.0)
    return big[..., 0] * np.linalg.norm(w / big, axis=-1)


def _orthogonalise(w: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """w (n, S) minus its projection on each row's basis (n, j, S): one classical Gram-Schmidt pass.

    One pass leaves rounding-level loss of orthogonality, which can only add copies of converged
    singular values (never a larger one) to the bidiagonal: harmless for the largest.
    """
    if basis.shape[1]:
        w = w - (np.matmul(basis, w[:, :, None])[:, :, 0][:, None, :] @ basis)[:, 0]
    return w


def _unit(w: np.ndarray, scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(norms, rows scaled to unit norm); a row whose norm is rounding noise next to ``scale`` becomes 0."""
    norm = safe_norm(w)
    live = norm > 1e-14 * scale  # the Krylov space is exhausted: nothing more to find in that row
    return np.where(live, norm, 0.0), np.where(live[:, None], w / np.where(live, norm, 1.0)[:, None], 0.0)


def _ritz(alpha: list[np.ndarray], beta: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The bidiagonal's largest singular value per row and its residual bound beta_{m+1} |x_m|."""
    a, b = np.stack(alpha, axis=1), np.stack(beta, axis=1)
    m = a.shape[1]
    bidiag = np.zeros((a.shape[0], m, m))
    idx = np.arange(m)
    bidiag[:, idx, idx] = a
    bidiag[:, idx[:-1], idx[1:]] = b[:, :-1]
    x, s, _ = np.linalg.svd(bidiag)
    return s[:, 0], b[:, -1] * np.abs(x[:, -1, 0])


def grad_log_norms(sys: jac.System, u: np.ndarray) -> np.ndarray:
    """ln ||dL/d(state of layer l after step t)||, (layers, T) in processing order; L = <u, the top layer's last h>."""
    adj = [(np.zeros(sys.out_size), np.zeros(sys.hidden_size) if sys.cell is Cell.lstm else None) for _ in sys.layers]
    adj[-1] = (np.asarray(u, np.float64), adj[-1][1])
    out, log_scale = np.empty((len(sys.layers), sys.steps)), 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        for t0, co in chunks(sys, reverse=True):
            for j in range(_length(co) - 1, -1, -1):
                total, adj = jac.vjp(sys, jac.at(co, j), adj)
                out[:, t0 + j] = [np.log(safe_norm(jac.join([b]))) + log_scale for b in total]
                norm = safe_norm(jac.join(adj))
                if norm > 0:  # rescale: the log of the scale carries the magnitude
                    adj = jac.split(sys, jac.join(adj) / norm)
                    log_scale += np.log(norm)
    return out


# --- the cost guard ------------------------------------------------------------------------------------------

ASSUMED_GFLOPS = 4.0  # float64 throughput of these per-step products on one core (measured: 14 GEMM, 4-6 overall)
STEP_OVERHEAD_S = 25e-6  # Python/NumPy call overhead per step and layer, for each pass over the steps
MAX_SECONDS = 3600.0  # refuse a job whose dynamics alone would take longer than an hour


def estimate_flops(cfg: RunConfig) -> float:
    """Floating-point operations of ``dynamics_columns`` for ``cfg`` (0 when both keys are off).

    Per direction and step, with G*H gate rows, H_out = proj_size or H, S the state size, k
    = lyapunov_k, m = min(LANCZOS_MAX, S): the coefficients (a one-vector step), the k-frame's
    JVP (k vectors) and QR (4 S k^2), and for the Jacobian norms m JVP+VJP pairs (m, the most
    Lanczos iterations: typically 32-40 are run) and their reorthogonalisation (4 m^2 S); gradient
    flow: one VJP per step.
    """
    if not (cfg.lyapunov_k or cfg.grad_flow) or cfg.cell in LINEAR_CELLS:  # linear: one pass, no products
        return 0.0
    gh, ho, size = GATES[cfg.cell] * cfg.hidden_size, out_size(cfg), jac.state_size(cfg)
    per_vector = 0.0  # one tangent through every layer: recurrent and input products, projection, elementwise
    for layer in range(cfg.layers):
        in_features = cfg.input_size if layer == 0 else ho * directions(cfg)
        per_vector += 2 * gh * (ho + (in_features if layer else 0)) + 20 * gh
        per_vector += 2 * ho * cfg.hidden_size if cfg.proj_size else 0
    k, m = cfg.lyapunov_k, min(LANCZOS_MAX, size)
    per_step = per_vector + 2 * gh * cfg.input_size  # coefficients, every pass counted once
    if k:
        per_step += k * per_vector + 4 * size * k**2 + 2 * m * per_vector + 4 * m * m * size
    if cfg.grad_flow:
        per_step += per_vector
    return float(per_step * cfg.timesteps * directions(cfg))


def estimate_seconds(cfg: RunConfig) -> float:
    """Wall time of ``dynamics_columns`` on one core: flops at ASSUMED_GFLOPS plus per-step overhead.

    A guard, on the high side: 1.0-3.6 times the times measured here (rnn, gru, lstm, H 32-512,
    T 300-5000, k 1-64, one thread; e.g. the edge_of_chaos jobs: estimated 9/22/31 s, ran 5/10/13 s).
    """
    if not (cfg.lyapunov_k or cfg.grad_flow):
        return 0.0
    passes = (3 if cfg.lyapunov_k else 0) + (1 if cfg.grad_flow else 0)
    overhead = STEP_OVERHEAD_S * cfg.layers * passes * cfg.timesteps * directions(cfg)
    return estimate_flops(cfg) / (ASSUMED_GFLOPS * 1e9) + overhead


def check(cfg: RunConfig) -> None:
    """Refuse, with one line, dynamics that are undefined or would take more than MAX_SECONDS."""
    if not (cfg.lyapunov_k or cfg.grad_flow):
        return
    if cfg.cell in LINEAR_CELLS:
        return linear_lyapunov.check(cfg)
    key = "lyapunov_k" if cfg.lyapunov_k else "grad_flow"
    jac.check_causal(cfg, key)
    size = jac.state_size(cfg)
    if cfg.lyapunov_k > size:
        state = "(h, c)" if cfg.cell is Cell.lstm else "h"
        raise ConfigError("lyapunov_k", cfg.lyapunov_k, f"at most the state size {size} (layers x {state})")
    if cfg.lyapunov_k and cfg.lyapunov_warmup >= cfg.timesteps:
        allowed = f"must be < timesteps ({cfg.timesteps}): the exponents average the steps after the warm-up"
        raise ConfigError("lyapunov_warmup", cfg.lyapunov_warmup, allowed)
    seconds = estimate_seconds(cfg)
    if seconds > MAX_SECONDS:
        sizes = ", ".join(
            f"{k}={getattr(cfg, k)}" for k in ("hidden_size", "layers", "timesteps", "lyapunov_k", "grad_flow")
        )
        allowed = (
            f"dynamics would take about {seconds / 3600:.1f} h ({sizes}; limit {MAX_SECONDS / 3600:.0f} h): "
            "lower timesteps or lyapunov_k"
        )
        raise ConfigError(key, getattr(cfg, key), allowed)


# --- the runner's entry point --------------------------------------------------------------------------------


def dynamics_columns(
    cfg: RunConfig, params: dict[str, np.ndarray], x: np.ndarray, ref: Outputs
) -> tuple[dict[str, float], pd.DataFrame, pd.DataFrame]:
    """Row columns, the spectrum (direction, index, exponent) and gradient flow (layer, direction, timestep,
    grad_log_norm), from the reference ``ref`` of ``params`` and ``x``. Empty tables for keys that are off."""
    if cfg.cell in LINEAR_CELLS:  # exact: time averages of ln|a_t| (rnnexp.linear.lyapunov)
        return linear_lyapunov.dynamics_columns(cfg, params, x)
    check(cfg)
    row: dict[str, float] = {}
    lyap = pd.DataFrame(columns=["direction", "index", "exponent"])
    grads = pd.DataFrame(columns=["layer", "direction", "timestep", "grad_log_norm"])
    if not (cfg.lyapunov_k or cfg.grad_flow):
        return row, lyap, grads
    sys_all = jac.systems(cfg, params, x, ref)
    if not all(np.isfinite(h).all() for s in sys_all for h in s.h):
        log.warning("the reference trajectory is not finite: dynamics columns are NaN")
        return _nan_columns(cfg), lyap, grads
    names = DIRECTIONS[: len(sys_all)]
    if cfg.lyapunov_k:
        spectra = [spectrum(s, cfg.lyapunov_k, cfg.lyapunov_warmup, cfg.seed) for s in sys_all]
        joint = np.sort(np.concatenate(spectra))[::-1][: cfg.lyapunov_k]  # block-diagonal: the union
        sigma = np.max([sigma_max(s, cfg.lyapunov_warmup, cfg.seed) for s in sys_all], axis=0)
        row |= {
            "lyap_max": float(joint[0]),
            "lyap_sum": float(joint.sum()),
            "lyap_dim": kaplan_yorke(joint, jac.state_size(cfg) * len(sys_all)),
            "jac_sigma_max_mean": float(sigma.mean()),
            "jac_sigma_max_max": float(sigma.max()),
        }
        lyap = pd.DataFrame(
            [(n, i, e) for n, ex in zip(names, spectra, strict=True) for i, e in enumerate(ex)],
            columns=lyap.columns,
        )
    if cfg.grad_flow:
        slope, grads = _grad_flow(cfg, sys_all, names)
        row["grad_norm_log_slope"] = slope
    return row, lyap, grads


def _grad_flow(cfg: RunConfig, sys_all: list[jac.System], names: tuple[str, ...]) -> tuple[float, pd.DataFrame]:
    """The top layer's slope and the long-form table; timestep is the position in the sequence, as in steps.csv."""
    ho, frames, tops = out_size(cfg), [], []
    for d, (s, name) in enumerate(zip(sys_all, names, strict=True)):
        norms = grad_log_norms(s, unit_vector(cfg)[d * ho : (d + 1) * ho])
        position = np.arange(s.steps)[::-1] if d else np.arange(s.steps)
        for layer, row in enumerate(norms):
            frames.append(pd.DataFrame({"layer": layer, "direction": name, "timestep": position, "grad_log_norm": row}))
        tops.append(norms[-1][::-1])  # the top layer by distance to the end of its direction
    joint = np.logaddexp.reduce(2 * np.stack(tops), axis=0) / 2  # ln sqrt(sum of squared norms)
    table = pd.concat(frames, ignore_index=True).sort_values(["layer", "direction", "timestep"], ignore_index=True)
    return log_slope(joint), table


def _nan_columns(cfg: RunConfig) -> dict[str, float]:
    keys = ["lyap_max", "lyap_sum", "lyap_dim", "jac_sigma_max_mean", "jac_sigma_max_max"] if cfg.lyapunov_k else []
    return dict.fromkeys(keys + (["grad_norm_log_slope"] if cfg.grad_flow else []), float("nan"))
