"""Hidden-state statistics of a forward pass, computed outside the timed region.

A row gets the same twelve columns whatever the network (``ROW_COLUMNS``; NaN where one does not
apply). Those named ``h_*`` come from the backend's own output sequence (top layer, every
direction) and final states (``output_columns``); ``c_abs_max`` and ``gate_saturation_frac``
from the float64 reference, which keeps every layer (``reference_stats``):

- h_mean, h_std, h_min, h_max, h_abs_mean: of every value of the output sequence.
- h_saturation_frac: share with |h| > 0.99; h_dead_frac: share exactly 0 (dead relu units).
- h_norm_first, h_norm_last: mean over the batch of the L2 norm of the state (directions side by
  side) after each direction's first step, and of h_n's top layer; h_norm_growth = last / first.
- c_abs_max (lstm): max |c| over the reference's whole cell-state trajectory.
- gate_saturation_frac: share of gate activations within 0.01 of a bound (an rnn's tanh is its
  one gate; lstm i, f, g, o; gru r, z, n), over every layer, direction and gate.

The parts go to a long-form side table, ``layer_stats.csv`` (``LAYER_STATS_COLUMNS``): per layer
and direction one row with gate "" (h_saturation_frac, h_dead_frac, h_norm_growth of that
direction alone, and gate_saturation_frac over its gates), then one row per gate with that gate's
gate_saturation_frac (h_* empty). The gates are counted while the reference runs, by its step
observer (``GateCounter``), so they cost no second pass; ``gate_activations`` recomputes them
from the reference's states, for checks and for a reference run without an observer.

A statistic that does not apply (c_abs_max off an LSTM; saturation for relu, or h_saturation_frac
for a projecting LSTM, whose h is not bounded by 1) is NaN, never an error. ``step_table`` gives
the state's trajectory: one row per (layer, direction, timestep), at most MAX_STEPS timesteps.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pandas as pd

from rnnexp.backends import Outputs
from rnnexp.backends._numpy import PACKED_GATES, StepHook
from rnnexp.config import Cell, Nonlinearity, RunConfig
from rnnexp.params import GATES, directions, expected_h_n_shape, expected_output_shape, out_size, suffix

SATURATION = 0.99  # |h| above this counts as saturated (tanh's slope there is < 0.02)
GATE_MARGIN = 0.01  # a gate within this of one of its bounds counts as saturated
MAX_STEPS = 200  # step_table keeps at most this many timesteps per (layer, direction)
CHUNK_ELEMENTS = 1 << 22  # gate pre-activations held at once while recomputing gates
OBSERVE_CHUNK_ELEMENTS = 1 << 16  # gate activations the observer buffers before counting them (~1 MB held)
DIRECTIONS = ("forward", "reverse")
GATE_NAMES = {Cell.rnn: ("h",), Cell.lstm: ("i", "f", "g", "o"), Cell.gru: ("r", "z", "n")}
_BOUNDS = {"h": (-1.0, 1.0), "g": (-1.0, 1.0), "n": (-1.0, 1.0)}  # tanh; every other gate is a sigmoid
LAYER_STATS_FILE = "layer_stats.csv"
ROW_COLUMNS = (
    "h_mean",
    "h_std",
    "h_min",
    "h_max",
    "h_abs_mean",
    "h_saturation_frac",
    "h_dead_frac",
    "h_norm_first",
    "h_norm_last",
    "h_norm_growth",
    "c_abs_max",
    "gate_saturation_frac",
)
LAYER_STATS_COLUMNS = (
    "layer",
    "direction",
    "gate",
    "h_saturation_frac",
    "h_dead_frac",
    "h_norm_growth",
    "gate_saturation_frac",
)


def h_bounded(cfg: RunConfig) -> bool:
    """Whether h lies in [-1, 1], so |h| > 0.99 means saturation: not for relu, nor a projected LSTM."""
    return cfg.nonlinearity is Nonlinearity.tanh and not cfg.proj_size and cfg.cell in GATE_NAMES


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
    magnitude = np.abs(h)  # once, for two columns: a large output's passes are what this costs
    return {
        "h_mean": float(h.mean()),
        "h_std": float(h.std()),
        "h_min": float(h.min()),
        "h_max": float(h.max()),
        "h_abs_mean": float(magnitude.mean()),
        "h_saturation_frac": float((magnitude > SATURATION).mean()) if bounded else float("nan"),
        "h_dead_frac": float((h == 0).mean()),
    }


def state_stats(cfg: RunConfig, out: Outputs, ref: Outputs, params: dict[str, np.ndarray], x: np.ndarray) -> dict:
    """A row's statistic columns (``ROW_COLUMNS``) from a backend's outputs and a reference run without an observer.

    ``out`` is the backend's own result as NumPy arrays; ``ref`` the float64 reference with ``layers``;
    ``params`` and ``x`` what the backend was given (the gates are recomputed from them). A job
    counts the gates while its reference runs instead: ``output_columns`` + ``reference_stats``.
    """
    return output_columns(cfg, out) | reference_stats(cfg, ref, count_gates(cfg, params, ref, x))[0]


def layer_stats(cfg: RunConfig, ref: Outputs, params: dict[str, np.ndarray], x: np.ndarray) -> pd.DataFrame:
    """The ``layer_stats.csv`` table of a reference run without an observer (gates recomputed)."""
    return reference_stats(cfg, ref, count_gates(cfg, params, ref, x))[1]


def output_columns(cfg: RunConfig, out: Outputs) -> dict[str, float]:
    """The h_* columns, from the backend's own output sequence and final states."""
    with np.errstate(all="ignore"):
        return output_stats(out.output, h_bounded(cfg)) | norm_stats(cfg, out)


def norm_stats(cfg: RunConfig, out: Outputs) -> dict[str, float]:
    """h_norm_first (after each direction's first step), h_norm_last (h_n's top layer) and their ratio.

    NaN when the backend's shapes are wrong (shape_ok says so), rather than a failed row.
    """
    h, h_n = np.asarray(out.output), np.asarray(out.h_n, np.float64)
    if h.shape != expected_output_shape(cfg) or h_n.shape != expected_h_n_shape(cfg):
        return dict.fromkeys(("h_norm_first", "h_norm_last", "h_norm_growth"), float("nan"))
    first = mean_norm(first_last(cfg, time_major(cfg, h))[0].astype(np.float64))  # upcast the first step only
    last = mean_norm(np.concatenate(list(h_n[(cfg.layers - 1) * directions(cfg) :]), axis=-1))
    return {"h_norm_first": first, "h_norm_last": last, "h_norm_growth": growth(first, last)}


def gate_names(cfg: RunConfig) -> tuple[str, ...]:
    """The cell's gates in PyTorch's order; none for relu, whose activation is unbounded."""
    return GATE_NAMES.get(cfg.cell, ()) if has_gates(cfg) else ()  # a linear cell's gates are not counted


class GateCounter:
    """Saturated gate activations and the cell state's largest |c|, counted per layer, direction and gate.

    Pass it as the reference's observer (``numpy_ref.reference(..., observe=counter)``): its hook
    copies each step's gate activations (and c) out of the loop's buffers and counts them a chunk
    of steps at a time with ``gate_saturated``, so the statistics need no second pass over the
    sequence and a step pays one or two copies. ``add`` takes counts made elsewhere
    (``count_gates`` recomputes them from a finished reference).
    """

    def __init__(self, cfg: RunConfig):
        self.cfg = cfg
        self.names = gate_names(cfg)
        self.saturated = np.zeros((cfg.layers, directions(cfg), len(self.names)), np.int64)  # PyTorch gate order
        self.values = np.zeros((cfg.layers, directions(cfg)), np.int64)  # activations seen, per gate
        self.c_abs_max = float("nan")
        self._parts: list[_StepBuffer] = []

    def add(self, layer: int, direction: int, saturated, values: int, c_abs_max: float = float("nan")) -> None:
        """Add one chunk's counts: saturated activations per gate (PyTorch order) and activations per gate."""
        self.saturated[layer, direction] += np.asarray(saturated, np.int64)
        self.values[layer, direction] += values
        if c_abs_max > self.c_abs_max or (math.isnan(self.c_abs_max) and not math.isnan(c_abs_max)):
            self.c_abs_max = float(c_abs_max)

    def __call__(self, layer: int, direction: int) -> StepHook | None:
        """numpy_ref's observer: the step hook for one layer and direction (None without gates)."""
        if not self.names:
            return None
        part = _StepBuffer(self, layer, direction)
        self._parts.append(part)
        return part

    def flush(self) -> None:
        """Count the steps still buffered (each part flushes itself after its last step anyway)."""
        for part in self._parts:
            part.flush()


class _StepBuffer:
    """One layer and direction's steps as the reference makes them, counted a chunk of steps at a time."""

    def __init__(self, counter: GateCounter, layer: int, direction: int):
        self.counter, self.layer, self.direction = counter, layer, direction
        cell, hidden = counter.cfg.cell, counter.cfg.hidden_size
        packed = PACKED_GATES[cell]
        self.order = [packed.index(g) for g in counter.names]  # packed position of each gate in PyTorch order
        self.packed = packed
        self.lo, self.hi = (np.repeat([_BOUNDS.get(g, (0.0, 1.0))[j] for g in packed], hidden) for j in (0, 1))
        self.use_h = cell is Cell.rnn  # an rnn's gate buffer holds sigmoid(2a); its activation is h itself
        self.steps_left = counter.cfg.timesteps
        self.acts: np.ndarray | None = None  # (steps, B, G*H) activations of the steps not counted yet
        self.cs: np.ndarray | None = None  # (steps, B, H) an LSTM's cell states
        self.n = 0

    def __call__(self, gates: np.ndarray, c: np.ndarray | None, h: np.ndarray) -> None:
        acts = h if self.use_h else gates
        if self.acts is None:
            steps = min(self.steps_left, max(1, OBSERVE_CHUNK_ELEMENTS // acts.size))
            # The chunk, a scratch array and the flags, allocated once per part: fresh temporaries
            # at every chunk would cost a page fault per page.
            self.acts, self.below = np.empty((steps, *acts.shape)), np.empty((steps, *acts.shape))
            self.flags = np.empty((steps, *acts.shape), bool)
            self.cs = np.empty((steps, *c.shape)) if c is not None else None
        self.acts[self.n] = acts
        if self.cs is not None:
            self.cs[self.n] = c
        self.n += 1
        self.steps_left -= 1
        if self.n == len(self.acts) or self.steps_left == 0:
            self.flush()
        if self.steps_left == 0:
            self.acts = self.below = self.flags = self.cs = None  # this part is done: free its buffers

    def flush(self) -> None:
        """Count the buffered steps: ``gate_saturated``'s arithmetic, on every gate at once."""
        if not self.n:
            return
        acts, below, flags = (a[: self.n] for a in (self.acts, self.below, self.flags))
        hidden = self.counter.cfg.hidden_size
        with np.errstate(all="ignore"):
            np.subtract(acts, self.lo, out=below)
            above = np.subtract(self.hi, acts, out=acts)  # the copy is ours to overwrite
            np.less(np.minimum(below, above, out=below), GATE_MARGIN, out=flags)
            per_gate = [np.count_nonzero(flags[..., j * hidden : (j + 1) * hidden]) for j in self.order]
            cs = self.cs[: self.n] if self.cs is not None else None
            c_max = max(float(cs.max()), -float(cs.min())) if cs is not None else float("nan")
        self.counter.add(self.layer, self.direction, per_gate, flags.size // len(self.packed), c_max)
        self.n = 0


def count_gates(cfg: RunConfig, params: dict[str, np.ndarray], ref: Outputs, x: np.ndarray) -> GateCounter:
    """A GateCounter filled from gates recomputed from a finished reference (``gate_activations``)."""
    counter = GateCounter(cfg)
    for k in range(cfg.layers):
        for d in range(directions(cfg) if counter.names else 0):
            for chunk in gate_activations(cfg, params, ref, x, k, d):
                saturated = [gate_saturated(g, chunk[g]).sum() for g in counter.names]
                c_max = float(np.abs(chunk["c"]).max()) if "c" in chunk else float("nan")
                counter.add(k, d, saturated, chunk[counter.names[0]].size, c_max)
    return counter


def reference_stats(cfg: RunConfig, ref: Outputs, gates: GateCounter) -> tuple[dict[str, float], pd.DataFrame]:
    """The reference's row columns (c_abs_max, gate_saturation_frac) and the ``layer_stats.csv`` table.

    ``ref`` is the float64 reference with ``layers``; ``gates`` the counts made while it ran.
    """
    n_dir, ho, nan = directions(cfg), out_size(cfg), float("nan")
    n_gates = len(gates.names)
    gates.flush()
    rows = []
    with np.errstate(all="ignore"):
        for k, seq in enumerate(ref.layers):
            for d in range(n_dir):
                part = seq[:, :, d * ho : (d + 1) * ho]
                first, last = (part[-1], part[0]) if d else (part[0], part[-1])
                sat, n = gates.saturated[k, d], gates.values[k, d]
                rows.append(
                    {
                        "layer": k,
                        "direction": DIRECTIONS[d],
                        "gate": "",
                        "h_saturation_frac": saturated_frac(part) if h_bounded(cfg) else nan,
                        "h_dead_frac": float((part == 0).mean()),
                        "h_norm_growth": growth(mean_norm(first), mean_norm(last)),
                        "gate_saturation_frac": _ratio(sat.sum(), n * n_gates) if n_gates else nan,
                    }
                )
                for j, g in enumerate(gates.names):  # the h_* columns belong to the layer-direction row
                    rows.append(
                        {"layer": k, "direction": DIRECTIONS[d], "gate": g, "gate_saturation_frac": _ratio(sat[j], n)}
                    )
    total = gates.values.sum() * n_gates
    row = {
        "c_abs_max": gates.c_abs_max,
        "gate_saturation_frac": _ratio(gates.saturated.sum(), total) if n_gates else nan,
    }
    return row, pd.DataFrame(rows, columns=list(LAYER_STATS_COLUMNS)).astype({"gate": str})


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
