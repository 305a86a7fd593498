"""Hidden-state statistics of a forward pass, computed outside the timed region.

``state_stats`` gives a job's row its columns. Unsuffixed ``h_*`` come from the backend's own
output sequence (top layer, every direction) and final states; the rest from the float64
reference, which keeps every layer, with gates recomputed from the same weights and inputs:

- h_mean, h_std, h_min, h_max, h_abs_mean: of every value of the output sequence.
- h_saturation_frac: share with |h| > 0.99; h_dead_frac: share exactly 0 (dead relu units).
- h_norm_first, h_norm_last: mean over the batch of the L2 norm of the state (directions side by
  side) after each direction's first step, and of h_n's top layer; h_norm_growth = last / first.
- c_abs_max (lstm): max |c| over the reference's whole cell-state trajectory.
- gate_saturation_frac[_<gate>]: share of gate activations within 0.01 of a bound (an rnn's
  tanh is its one gate; per gate for lstm i, f, g, o and gru r, z, n).
- _l{k} variants (layers > 1) and _forward/_reverse variants (bidirectional), from the reference.

A statistic that does not apply (c_abs_max off an LSTM; saturation for relu, or h_saturation_frac
for a projecting LSTM, whose h is not bounded by 1) is NaN, never an error. ``step_table`` gives
the state's trajectory: one row per (layer, direction, timestep), at most MAX_STEPS timesteps.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

from rnnexp.backends import Outputs
from rnnexp.config import Cell, Nonlinearity, RunConfig
from rnnexp.params import GATES, directions, expected_h_n_shape, expected_output_shape, out_size, suffix

SATURATION = 0.99  # |h| above this counts as saturated (tanh's slope there is < 0.02)
GATE_MARGIN = 0.01  # a gate within this of one of its bounds counts as saturated
MAX_STEPS = 200  # step_table keeps at most this many timesteps per (layer, direction)
CHUNK_ELEMENTS = 1 << 22  # gate pre-activations held at once while recomputing gates
DIRECTIONS = ("forward", "reverse")
GATE_NAMES = {Cell.rnn: ("h",), Cell.lstm: ("i", "f", "g", "o"), Cell.gru: ("r", "z", "n")}
_BOUNDS = {"h": (-1.0, 1.0), "g": (-1.0, 1.0), "n": (-1.0, 1.0)}  # tanh; every other gate is a sigmoid


def h_bounded(cfg: RunConfig) -> bool:
    """Whether h lies in [-1, 1], so |h| > 0.99 means saturation: not for relu, nor a projected LSTM."""
    return cfg.nonlinearity is Nonlinearity.tanh and not cfg.proj_size


def has_gates(cfg: RunConfig) -> bool:
    """Whether the cell has bounded activations to saturate (an rnn's tanh counts as its one gate)."""
    return cfg.nonlinearity is Nonlinearity.tanh


def time_major(cfg: RunConfig, seq: np.ndarray) -> np.ndarray:
    return seq.swapaxes(0, 1) if cfg.batch_first else seq


def first_last(cfg: RunConfig, seq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The states after the first and after the last step, each direction in its processing order.

    ``seq`` is one layer's time-major (T, B, D*H_out) sequence; the reverse direction starts at
    t = T-1. Returns two (B, D*H_out) arrays, directions side by side.
    """
    ho = out_size(cfg)
    firsts, lasts = [], []
    for d in range(directions(cfg)):
        part = seq[:, :, d * ho : (d + 1) * ho]
        firsts.append(part[-1 if d else 0])
        lasts.append(part[0 if d else -1])
    return np.concatenate(firsts, axis=-1), np.concatenate(lasts, axis=-1)


def mean_norm(states: np.ndarray) -> float:
    """Mean over the batch of the L2 norm over features: (B, F) -> float."""
    return float(np.linalg.norm(states, axis=-1).mean())


def growth(first: float, last: float) -> float:
    """last / first; NaN when first is 0 (a state that starts at zero has no growth factor)."""
    return last / first if first > 0 else float("nan")


def saturated_frac(h: np.ndarray) -> float:
    return float((np.abs(h) > SATURATION).mean())


def output_stats(h: np.ndarray, bounded: bool = True) -> dict[str, float]:
    """Distribution of a state sequence's values, any layout: mean, spread, range, saturated and dead shares."""
    h = np.asarray(h, dtype=np.float64)
    return {
        "h_mean": float(h.mean()),
        "h_std": float(h.std()),
        "h_min": float(h.min()),
        "h_max": float(h.max()),
        "h_abs_mean": float(np.abs(h).mean()),
        "h_saturation_frac": saturated_frac(h) if bounded else float("nan"),
        "h_dead_frac": float((h == 0).mean()),
    }


def state_stats(cfg: RunConfig, out: Outputs, ref: Outputs, params: dict[str, np.ndarray], x: np.ndarray) -> dict:
    """A row's statistic columns (see the module docstring) from a backend's outputs and the reference.

    ``out`` is the backend's own result as NumPy arrays; ``ref`` the float64 reference with ``layers``;
    ``params`` and ``x`` what the backend was given (the gates are recomputed from them).
    """
    with np.errstate(all="ignore"):
        row = output_stats(out.output, h_bounded(cfg))
        row.update(norm_stats(cfg, out))
        row.update(reference_stats(cfg, ref, params, x))
    return row


def norm_stats(cfg: RunConfig, out: Outputs) -> dict[str, float]:
    """h_norm_first (after each direction's first step), h_norm_last (h_n's top layer) and their ratio.

    NaN when the backend's shapes are wrong (shape_ok says so), rather than a failed row.
    """
    h, h_n = np.asarray(out.output, np.float64), np.asarray(out.h_n, np.float64)
    if h.shape != expected_output_shape(cfg) or h_n.shape != expected_h_n_shape(cfg):
        return dict.fromkeys(("h_norm_first", "h_norm_last", "h_norm_growth"), float("nan"))
    first = mean_norm(first_last(cfg, time_major(cfg, h))[0])
    last = mean_norm(np.concatenate(list(h_n[(cfg.layers - 1) * directions(cfg) :]), axis=-1))
    return {"h_norm_first": first, "h_norm_last": last, "h_norm_growth": growth(first, last)}


def reference_stats(cfg: RunConfig, ref: Outputs, params: dict[str, np.ndarray], x: np.ndarray) -> dict:
    """Gate and cell-state columns, and the per-layer and per-direction variants, from the reference."""
    n_dir, ho, nan = directions(cfg), out_size(cfg), float("nan")
    gates = GATE_NAMES[cfg.cell] if has_gates(cfg) else ()
    h_counts = np.zeros((cfg.layers, n_dir, 3))  # per layer and direction: saturated h, dead h, all h
    g_counts = np.zeros((cfg.layers, n_dir, len(gates) + 1))  # saturated per gate, values per gate
    growths, c_abs_max = [], nan
    for k, seq in enumerate(ref.layers):
        growths.append(growth(*(mean_norm(s) for s in first_last(cfg, seq))))
        for d in range(n_dir):
            part = seq[:, :, d * ho : (d + 1) * ho]
            h_counts[k, d] = (np.abs(part) > SATURATION).sum(), (part == 0).sum(), part.size
            for chunk in gate_activations(cfg, params, ref, x, k, d) if gates else ():
                g_counts[k, d, :-1] += [gate_saturated(g, chunk[g]).sum() for g in gates]
                g_counts[k, d, -1] += chunk[gates[0]].size
                if "c" in chunk:
                    c_abs_max = float(np.nanmax([c_abs_max, np.abs(chunk["c"]).max()]))

    def h_frac(col: int, where=np.s_[:, :]) -> float:
        if col == 0 and not h_bounded(cfg):
            return nan
        return _ratio(h_counts[where][..., col].sum(), h_counts[where][..., 2].sum())

    def gate_frac(where=np.s_[:, :], gate: int | None = None) -> float:
        if not gates:
            return nan
        sat = g_counts[where][..., :-1]
        n = g_counts[where][..., -1].sum()
        return _ratio(sat.sum(), n * len(gates)) if gate is None else _ratio(sat[..., gate].sum(), n)

    row = {"c_abs_max": c_abs_max, "gate_saturation_frac": gate_frac()}
    if cfg.cell is not Cell.rnn:
        row.update({f"gate_saturation_frac_{g}": gate_frac(gate=j) for j, g in enumerate(gates)})
    for k in range(cfg.layers if cfg.layers > 1 else 0):
        where = np.s_[k : k + 1, :]
        row[f"h_saturation_frac_l{k}"] = h_frac(0, where)
        row[f"h_dead_frac_l{k}"] = h_frac(1, where)
        row[f"h_norm_growth_l{k}"] = growths[k]
        row[f"gate_saturation_frac_l{k}"] = gate_frac(where)
    for d, name in enumerate(DIRECTIONS[:n_dir] if n_dir > 1 else ()):
        where = np.s_[:, d : d + 1]
        row[f"h_saturation_frac_{name}"] = h_frac(0, where)
        row[f"h_dead_frac_{name}"] = h_frac(1, where)
        row[f"gate_saturation_frac_{name}"] = gate_frac(where)
    return row


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den else float("nan")


def gate_saturated(name: str, act: np.ndarray) -> np.ndarray:
    """True where an activation lies within GATE_MARGIN of a bound of its range ((-1, 1) tanh, (0, 1) sigmoid)."""
    lo, hi = _BOUNDS.get(name, (0.0, 1.0))
    return np.minimum(act - lo, hi - act) < GATE_MARGIN


def _sigmoid(a: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * a))  # never overflows


def gate_activations(
    cfg: RunConfig, params: dict[str, np.ndarray], ref: Outputs, x: np.ndarray, layer: int, direction: int
) -> Iterator[dict[str, np.ndarray]]:
    """One layer and direction's gates, recomputed in float64, in chunks of steps in processing order.

    Each chunk maps a gate name (``GATE_NAMES``) to its activations, (steps, B, hidden_size), plus
    ``c`` for an LSTM: the cell state after each step. The pre-activations of a whole chunk are one
    matrix product, since h_{t-1} is read from the reference rather than recomputed; only an LSTM's
    cell state needs a loop over steps, and that loop is elementwise.
    """
    s = suffix(layer, direction)
    p = {n: params.get(n + s) for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
    w_ih, w_hh = (p[n].astype(np.float64).T for n in ("weight_ih", "weight_hh"))
    b_ih, b_hh = (p[n].astype(np.float64) if p[n] is not None else 0.0 for n in ("bias_ih", "bias_hh"))
    ho = out_size(cfg)
    inp = time_major(cfg, np.asarray(x, np.float64)) if layer == 0 else ref.layers[layer - 1]
    hs = ref.layers[layer][:, :, direction * ho : (direction + 1) * ho]
    if direction:
        inp, hs = inp[::-1], hs[::-1]
    steps, batch = hs.shape[:2]
    h_prev = np.concatenate([np.zeros((1, batch, ho)), hs[:-1]])
    chunk = max(1, CHUNK_ELEMENTS // (batch * GATES[cfg.cell] * cfg.hidden_size))
    c = np.zeros((batch, cfg.hidden_size))
    with np.errstate(all="ignore"):
        for t0 in range(0, steps, chunk):
            gx = inp[t0 : t0 + chunk] @ w_ih + b_ih
            gh = h_prev[t0 : t0 + chunk] @ w_hh + b_hh
            acts = _activate(cfg.cell, gx, gh)
            if cfg.cell is Cell.lstm:
                acts["c"] = np.empty_like(acts["g"])
                for t in range(len(gx)):
                    c = acts["f"][t] * c + acts["i"][t] * acts["g"][t]
                    acts["c"][t] = c
            yield acts


def _activate(cell: Cell, gx: np.ndarray, gh: np.ndarray) -> dict[str, np.ndarray]:
    """Gate activations from the input and recurrent pre-activations, in PyTorch's gate order."""
    if cell is Cell.rnn:
        return {"h": np.tanh(gx + gh)}
    if cell is Cell.lstm:
        i, f, g, o = np.split(gx + gh, 4, axis=-1)
        return {"i": _sigmoid(i), "f": _sigmoid(f), "g": np.tanh(g), "o": _sigmoid(o)}
    (x_r, x_z, x_n), (h_r, h_z, h_n) = np.split(gx, 3, axis=-1), np.split(gh, 3, axis=-1)
    r = _sigmoid(x_r + h_r)
    return {"r": r, "z": _sigmoid(x_z + h_z), "n": np.tanh(x_n + r * h_n)}  # b_hn inside the reset product


def kept_steps(steps: int, limit: int = MAX_STEPS) -> np.ndarray:
    """Timesteps step_table keeps: all of them up to ``limit``, else ``limit`` evenly spaced ones.

    The first and last are always kept; the others are round(i * (T-1) / (limit-1)), i = 0..limit-1.

    >>> kept_steps(5).tolist(), kept_steps(1000, limit=4).tolist()
    ([0, 1, 2, 3, 4], [0, 333, 666, 999])
    """
    if steps <= limit:
        return np.arange(steps)
    return np.round(np.linspace(0, steps - 1, limit)).astype(int)


def step_table(cfg: RunConfig, ref: Outputs) -> pd.DataFrame:
    """The reference's states over time, long form: one row per (layer, direction, kept timestep).

    ``timestep`` is the position in the sequence (the reverse direction's state at t has read
    inputs t..T-1). h_norm is the mean over the batch of the L2 norm over that direction's features.
    """
    ho = out_size(cfg)
    frames = []
    for k, seq in enumerate(ref.layers):
        keep = kept_steps(seq.shape[0])
        for d in range(directions(cfg)):
            h = seq[keep, :, d * ho : (d + 1) * ho]
            sat = (np.abs(h) > SATURATION).mean(axis=(1, 2)) if h_bounded(cfg) else np.nan
            frame = {
                "layer": k,
                "direction": DIRECTIONS[d],
                "timestep": keep,
                "h_mean": h.mean(axis=(1, 2)),
                "h_std": h.std(axis=(1, 2)),
                "h_norm": np.linalg.norm(h, axis=2).mean(axis=1),
                "h_saturation_frac": sat,
            }
            frames.append(pd.DataFrame(frame))
    return pd.concat(frames, ignore_index=True)
