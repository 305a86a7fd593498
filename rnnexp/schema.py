"""The declared row: every column of every table rnnexp writes, in one registry.

Each column has a name, a kind (what it is), a pandas dtype, a unit, a one-line meaning and the
rule ``compare`` judges it by. The CSV writer conforms rows to it (:func:`conform`), the readers
give it its dtypes (:func:`read_table`), the summary, report, compare and baseline pick columns
by kind and rule, and the README's column table is generated from it (:func:`markdown_table`,
``python -m rnnexp.schema --markdown``). Imports neither torch nor Hydra.

>>> names()[:3], column("time_median_ms").rule, column("h_std").dtype
(['cell', 'input_size', 'hidden_size'], 'timing', 'float64')
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import logging
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from rnnexp.config import POSITIVE_INTS, SESSION_KEYS, RunConfig, TimingConfig

log = logging.getLogger(__name__)

# What a column is.
CONFIG = "config"  # a key the user sets (and the timing settings, which are keys of the timing group)
SHAPE = "shape"  # a tensor's shape, or whether the shapes match their formulas
TIMING = "timing"  # measured on a machine: differs from run to run
WORK = "work"  # FLOPs and bytes: the model of the work, its rate and the memory it held
STATISTIC = "statistic"  # the hidden state's values and dynamics: a function of config and seed
PARITY = "parity"  # agreement with the float64 reference
OUTCOME = "outcome"  # whether the job ran (status) and why not (error)
PROVENANCE = "provenance"  # where, when, how and under what load the row was made
INDEX = "index"  # a side table's join and position columns (job_num, layer, direction, ...)
KINDS = (CONFIG, SHAPE, TIMING, WORK, STATISTIC, PARITY, OUTCOME, PROVENANCE, INDEX)

# How ``compare`` treats a column.
KEY = "key"  # rows are matched on these
SETTING = "setting"  # not matched on; compare warns when BASE and NEW differ (timing settings, host, versions)
LOAD = "load"  # the machine's load: compare warns when either side ran loaded
EXACT = "exact"  # must be equal (strings, ints, bools); status and *_ok say which way is better
FLOAT = "float"  # equal within a tolerance (rtol/atol)
ERROR = "error"  # a rounding residue: only growth past tenfold counts
TIMED = "timing"  # judged from samples.csv with a confidence interval and a minimum effect (--ratio)
IGNORED = "ignored"  # shown, never compared
RULES = (KEY, SETTING, LOAD, EXACT, FLOAT, ERROR, TIMED, IGNORED)

INT, FLOAT64, BOOL, STR = "Int64", "float64", "boolean", "string"

RESULTS = "results.csv"
STEPS = "steps.csv"
LAYER_STATS = "layer_stats.csv"
SAMPLES = "samples.csv"
LYAPUNOV = "lyapunov.csv"


@dataclass(frozen=True)
class Column:
    name: str
    kind: str
    dtype: str  # a pandas dtype: Int64, float64, boolean, string (all of them hold a missing value)
    unit: str
    meaning: str
    rule: str = IGNORED
    phases: tuple[str, ...] = ()  # a judged timing: the samples.csv phases it summarises, first present wins


def _c(name, kind, dtype, unit, meaning, rule=IGNORED, phases=()) -> Column:
    return Column(name, kind, dtype, unit, meaning, rule, tuple(phases))


_CONFIG_MEANING = {
    "cell": ("", "recurrent cell: rnn, lstm, gru"),
    "input_size": ("features", "input features per timestep"),
    "hidden_size": ("units", "hidden units per layer and direction"),
    "layers": ("layers", "stacked layers"),
    "bidirectional": ("", "a reverse direction beside the forward one"),
    "timesteps": ("steps", "sequence length"),
    "batch_size": ("sequences", "sequences per batch"),
    "batch_first": ("", "input and output laid out (batch, time, features)"),
    "nonlinearity": ("", "rnn activation: tanh, relu"),
    "bias": ("", "bias vectors present"),
    "proj_size": ("units", "LSTM projection size (0 = none)"),
    "backend": ("", "engine that ran the job: numpy, torch, torch_cell, ..."),
    "device": ("", "device asked for: cpu, cuda, auto"),
    "dtype": ("", "floating-point type of weights, inputs and states"),
    "seed": ("", "seed of the weights and inputs"),
    "init": ("", "weight initialisation scheme"),
    "init_gain": ("x", "multiplier of the init's scale"),
    "input_dist": ("", "distribution of the inputs"),
    "input_scale": ("x", "multiplier of the inputs"),
    "threads": ("threads", "torch and BLAS threads while timing"),
    "mode": ("", "inference (forward) or training (forward + backward)"),
    "lyapunov_k": ("exponents", "Lyapunov exponents computed (0 = off)"),
    "lyapunov_warmup": ("steps", "steps evolved before the exponents are averaged"),
    "grad_flow": ("", "dL/dh_t norms over time recorded (steps.csv grad_log_norm)"),
}
_TIMING_MEANING = {
    "warmup": ("calls", "untimed calls after the cold first call"),
    "min_run_time_s": ("s", "blocks are collected at least this long"),
    "max_run_time_s": ("s", "blocks are collected at most this long"),
    "min_blocks": ("blocks", "blocks collected at least"),
    "block_min_s": ("s", "a block lasts at least this long"),
    "iqr_target_frac": ("frac", "stop early once IQR/median is under this (0 = never)"),
    "noisy_frac": ("frac", "a row is noisy when IQR/median exceeds this"),
}
_PY_DTYPE = {"int": INT, "float": FLOAT64, "bool": BOOL}


def _dtype_of(field: dataclasses.Field) -> str:
    annotation = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", "")
    return _PY_DTYPE.get(annotation, STR)  # enums and str are text


# The linear cells' keys (rnnexp.linear; issue 24).
_CONFIG_MEANING |= {
    "cell": ("", "recurrent cell: rnn, lstm, gru; linear in the state: mingru, minlstm, lru, s6"),
    "scan": ("", "how a linear cell's recurrence is computed: sequential, associative, chunked"),
    "scan_chunk": ("steps", "steps per chunk of scan=chunked"),
    "log_space": ("", "mingru/minlstm: the log-space form (h~ = g(x) > 0; parallel scans on logarithms)"),
    "state_size": ("units", "lru: complex state size; s6: state per channel"),
    "r_min": ("", "lru: smallest eigenvalue modulus of the initialisation ring"),
    "r_max": ("", "lru: largest eigenvalue modulus of the initialisation ring"),
    "max_phase": ("rad", "lru: eigenvalue phases drawn in [0, max_phase)"),
}


def _config_columns() -> list[Column]:
    """Every RunConfig key but the timing group, then the timing settings, prefixed ``timing_``."""
    cols = []
    for f in dataclasses.fields(RunConfig):
        if f.name == "timing" or f.name in SESSION_KEYS:  # session keys say where rows go: not in a row
            continue
        unit, meaning = _CONFIG_MEANING.get(f.name, ("", ""))  # a key added later: a test asks for its meaning
        cols.append(_c(f.name, CONFIG, _dtype_of(f), unit, meaning, KEY))
    for f in dataclasses.fields(TimingConfig):
        unit, meaning = _TIMING_MEANING.get(f.name, ("", ""))
        cols.append(_c(f"timing_{f.name}", CONFIG, _dtype_of(f), unit, f"timing setting: {meaning}", SETTING))
    return cols


_SHAPE = [
    _c("output_shape", SHAPE, STR, "", "shape of the output sequence, as a tuple", EXACT),
    _c("h_n_shape", SHAPE, STR, "", "shape of the final hidden states", EXACT),
    _c("c_n_shape", SHAPE, STR, "", "shape of the final cell states (lstm; else empty)", EXACT),
    _c("expected_output_shape", SHAPE, STR, "", "output shape by the documented formula", EXACT),
    _c("expected_h_n_shape", SHAPE, STR, "", "h_n shape by the documented formula", EXACT),
    _c("expected_c_n_shape", SHAPE, STR, "", "c_n shape by the documented formula", EXACT),
    _c("shape_ok", SHAPE, BOOL, "", "every shape equals its formula", EXACT),
]
_MAIN_PHASES = ("forward", "step")  # time_* is the forward in inference, the whole step in training
_TIMING = [
    _c("time_median_ms", TIMING, FLOAT64, "ms", "median time per call (forward; training: whole step)", TIMED,
       _MAIN_PHASES),
    _c("time_iqr_ms", TIMING, FLOAT64, "ms", "interquartile range of the per-call times"),
    _c("time_min_ms", TIMING, FLOAT64, "ms", "fastest per-call time (of a block)"),
    _c("time_mean_ms", TIMING, FLOAT64, "ms", "mean per-call time"),
    _c("n_runs", TIMING, INT, "calls", "timed calls in all"),
    _c("n_blocks", TIMING, INT, "blocks", "timed blocks (samples.csv rows of the main phase)"),
    _c("block_size", TIMING, INT, "calls", "calls per block"),
    _c("first_call_ms", TIMING, FLOAT64, "ms", "the cold first call, never among the blocks"),
    _c("noisy", TIMING, BOOL, "", "IQR/median exceeds timing_noisy_frac"),
    _c("compile_s", TIMING, FLOAT64, "s",
       "one-off compile or session-creation time (torch_compile, jax, onnxruntime), never in the timings"),
    _c("cpu_util", TIMING, FLOAT64, "cpu-s/s", "this process's CPU seconds per wall second over the timed calls"),
    _c("timed_s", TIMING, FLOAT64, "s", "wall time in timed calls: cold call, warm-ups, block sizing, blocks"),
    _c("job_wall_s", TIMING, FLOAT64, "s", "wall time of the whole job"),
    _c("fwd_time_median_ms", TIMING, FLOAT64, "ms", "training: median forward time per step", TIMED, ("fwd",)),
    _c("fwd_time_iqr_ms", TIMING, FLOAT64, "ms", "training: IQR of the forward time"),
    _c("bwd_data_time_median_ms", TIMING, FLOAT64, "ms", "training: median backward time to the inputs and states",
       TIMED, ("bwd_data",)),
    _c("bwd_data_time_iqr_ms", TIMING, FLOAT64, "ms", "training: IQR of the data backward time"),
    _c("bwd_weights_time_median_ms", TIMING, FLOAT64, "ms", "training: median backward time to the weights", TIMED,
       ("bwd_weights",)),
    _c("bwd_weights_time_iqr_ms", TIMING, FLOAT64, "ms", "training: IQR of the weight backward time"),
]  # fmt: skip
_WORK = [
    _c("flops", WORK, INT, "FLOP", "modelled floating-point operations of one forward", EXACT),
    _c("bwd_flops", WORK, INT, "FLOP", "training: modelled operations of one backward", EXACT),
    _c("gflops", WORK, FLOAT64, "GFLOP/s", "flops / time_median (training: (flops + bwd_flops) / step time)"),
    _c("peak_gflops", WORK, FLOAT64, "GFLOP/s", "this machine's measured GEMM peak for the dtype and threads"),
    _c("peak_frac", WORK, FLOAT64, "frac", "gflops / peak_gflops"),
    _c("peak_loaded", WORK, BOOL, "", "the GEMM peak behind peak_frac was measured under load", LOAD),
    _c("param_bytes", WORK, INT, "bytes", "every parameter", EXACT),
    _c("activation_bytes", WORK, INT, "bytes", "output, h_n and c_n", EXACT),
    _c(
        "peak_mem_bytes",
        WORK,
        INT,
        "bytes",
        "most bytes held at once by one call's allocations (training: one step); empty where unmeasurable",
    ),
    _c(
        "peak_mem_method",
        WORK,
        STR,
        "",
        "how it was measured (tracemalloc, torch_profiler, xla_memory_analysis, ...; docs: Measurement)",
    ),
    _c(
        "saved_activation_bytes",
        WORK,
        INT,
        "bytes",
        "training: what the BPTT recording holds for the backward (input, layer outputs, tapes)",
        EXACT,
    ),
]
# The linear cells' scans (rnnexp.linear.work, rnnexp.linear.bandwidth; issue 24): empty for the other cells.
_WORK += [
    _c("scan_bytes", WORK, INT, "bytes", "linear cells: bytes the scans move (a model; training: + adjoint)", EXACT),
    _c("scan_gbytes_per_s", WORK, FLOAT64, "GB/s", "scan_bytes / time_median"),
    _c("peak_gbytes_per_s", WORK, FLOAT64, "GB/s", "this machine's measured memory bandwidth (STREAM copy), threads"),
    _c("bandwidth_frac", WORK, FLOAT64, "frac", "scan_gbytes_per_s / peak_gbytes_per_s"),
]
_STATISTIC = [
    _c("h_mean", STATISTIC, FLOAT64, "", "mean of the output sequence's values", FLOAT),
    _c("h_std", STATISTIC, FLOAT64, "", "standard deviation of the output sequence's values", FLOAT),
    _c("h_min", STATISTIC, FLOAT64, "", "smallest output value", FLOAT),
    _c("h_max", STATISTIC, FLOAT64, "", "largest output value", FLOAT),
    _c("h_abs_mean", STATISTIC, FLOAT64, "", "mean |h| of the output sequence", FLOAT),
    _c("h_saturation_frac", STATISTIC, FLOAT64, "frac", "share of output values with |h| > 0.99", FLOAT),
    _c("h_dead_frac", STATISTIC, FLOAT64, "frac", "share of output values exactly 0", FLOAT),
    _c("h_norm_first", STATISTIC, FLOAT64, "", "mean L2 norm of the state after each direction's first step", FLOAT),
    _c("h_norm_last", STATISTIC, FLOAT64, "", "mean L2 norm of the top layer's final states", FLOAT),
    _c("h_norm_growth", STATISTIC, FLOAT64, "x", "h_norm_last / h_norm_first", FLOAT),
    _c("c_abs_max", STATISTIC, FLOAT64, "", "lstm: largest |c| over every layer, direction and step", FLOAT),
    _c("gate_saturation_frac", STATISTIC, FLOAT64, "frac", "share of gate activations within 0.01 of a bound", FLOAT),
    _c("lyap_max", STATISTIC, FLOAT64, "1/step", "largest Lyapunov exponent of the state dynamics", FLOAT),
    _c("lyap_sum", STATISTIC, FLOAT64, "1/step", "sum of the lyapunov_k largest exponents", FLOAT),
    _c("lyap_dim", STATISTIC, FLOAT64, "dims", "Kaplan-Yorke dimension from those exponents", FLOAT),
    _c("jac_sigma_max_mean", STATISTIC, FLOAT64, "", "mean over steps of the state Jacobian's largest singular value",
       FLOAT),
    _c("jac_sigma_max_max", STATISTIC, FLOAT64, "", "largest over steps of that singular value", FLOAT),
    _c("grad_norm_log_slope", STATISTIC, FLOAT64, "log/step",
       "slope of log ||dL/dh_t|| against the distance to the end", FLOAT),
]  # fmt: skip
_PARITY = [
    _c("max_abs_err_vs_ref", PARITY, FLOAT64, "", "largest |backend - float64 reference| over output, h_n, c_n", ERROR),
    _c("parity_tol", PARITY, FLOAT64, "", "tolerance: tol(dtype) * max(1, max |reference|)", FLOAT),
    _c("parity_ok", PARITY, BOOL, "", "max_abs_err_vs_ref <= parity_tol", EXACT),
    _c("grad_max_abs_err_vs_ref", PARITY, FLOAT64, "", "training: largest |gradient - reference gradient|", ERROR),
    _c("grad_parity_tol", PARITY, FLOAT64, "", "training: the gradients' tolerance", FLOAT),
    _c("grad_parity_ok", PARITY, BOOL, "", "training: grad_max_abs_err_vs_ref <= grad_parity_tol", EXACT),
]
_OUTCOME = [
    _c("status", OUTCOME, STR, "", "ok, or error when the job failed", EXACT),
    _c("error", OUTCOME, STR, "", "one line: why the job failed (empty when ok)"),
]
_PROVENANCE = [
    _c("concurrent_jobs", PROVENANCE, INT, "jobs", "jobs sharing this machine's cores while this one ran", SETTING),
    _c("device_used", PROVENANCE, STR, "", "the device that ran (what device=auto resolved to)", SETTING),
    _c("load_avg_1m", PROVENANCE, FLOAT64, "procs", "1-minute load average at the job's start", LOAD),
    _c("other_cpu_s", PROVENANCE, FLOAT64, "cpu-s", "CPU seconds other processes used during the job", LOAD),
    _c("python_version", PROVENANCE, STR, "", "Python", SETTING),
    _c("torch_version", PROVENANCE, STR, "", "PyTorch", SETTING),
    _c("numpy_version", PROVENANCE, STR, "", "NumPy", SETTING),
    _c("onnxruntime_version", PROVENANCE, STR, "", "ONNX Runtime (empty when not installed)", SETTING),
    _c("jax_version", PROVENANCE, STR, "", "JAX (empty when not installed)", SETTING),
    _c("onnx_version", PROVENANCE, STR, "", "the onnx package that built the graph (backend onnxruntime)", SETTING),
    _c("jaxlib_version", PROVENANCE, STR, "", "jaxlib (backend jax)", SETTING),
    _c(
        "engine_threads",
        PROVENANCE,
        INT,
        "threads",
        "threads in the engine's own pool, read back from the engine",
        SETTING,
    ),
    _c("rnnexp_version", PROVENANCE, STR, "", "rnnexp", SETTING),
    _c("hostname", PROVENANCE, STR, "", "the machine's name", SETTING),
    _c("cpu_model", PROVENANCE, STR, "", "the CPU's model name", SETTING),
    _c("git_commit", PROVENANCE, STR, "", "commit of the rnnexp checkout"),
    _c("git_dirty", PROVENANCE, BOOL, "", "the checkout had uncommitted changes"),
    _c("slurm_job_id", PROVENANCE, STR, "", "SLURM job id (empty off SLURM)"),
    _c("job_num", PROVENANCE, INT, "", "the job's number in its sweep; side tables join on it"),
    _c("overrides", PROVENANCE, STR, "", "the job's command-line overrides"),
    _c("command", PROVENANCE, STR, "", "the single run that re-creates this row"),
]

_JOB = _c("job_num", INDEX, INT, "", "the job's number: joins results.csv")
_LAYER = _c("layer", INDEX, INT, "", "layer, from 0 (empty: every layer)")
_DIRECTION = _c("direction", INDEX, STR, "", "forward or reverse (empty: both)")
SIDE_TABLES: dict[str, tuple[Column, ...]] = {
    STEPS: (
        _JOB,
        _c("layer", INDEX, INT, "", "layer, from 0"),
        _c("direction", INDEX, STR, "", "forward or reverse"),
        _c("timestep", INDEX, INT, "step", "position in the sequence (at most 200 kept, evenly spaced)"),
        _c("h_mean", STATISTIC, FLOAT64, "", "mean of the state's values at this step (float64 reference)", FLOAT),
        _c("h_std", STATISTIC, FLOAT64, "", "their standard deviation", FLOAT),
        _c("h_norm", STATISTIC, FLOAT64, "", "mean over the batch of the state's L2 norm", FLOAT),
        _c("h_saturation_frac", STATISTIC, FLOAT64, "frac", "share of values with |h| > 0.99", FLOAT),
        _c("grad_log_norm", STATISTIC, FLOAT64, "", "grad_flow: natural log of ||dL/dh_t||", FLOAT),
    ),
    LAYER_STATS: (
        _JOB,
        _LAYER,
        _DIRECTION,
        _c("gate", INDEX, STR, "", "gate name (i, f, g, o / r, z, n / h; empty: every gate)"),
        _c("h_saturation_frac", STATISTIC, FLOAT64, "frac", "share of this part's h with |h| > 0.99", FLOAT),
        _c("h_dead_frac", STATISTIC, FLOAT64, "frac", "share of this part's h exactly 0", FLOAT),
        _c("h_norm_growth", STATISTIC, FLOAT64, "x", "this part's final / first state norm", FLOAT),
        _c(
            "gate_saturation_frac",
            STATISTIC,
            FLOAT64,
            "frac",
            "share of gate activations within 0.01 of a bound",
            FLOAT,
        ),
    ),  # fmt: skip
    SAMPLES: (
        _JOB,
        _c("phase", INDEX, STR, "", "forward (inference); step, fwd, bwd_data, bwd_weights (training)"),
        _c("block", INDEX, INT, "", "block number, 0..n_blocks-1, in the order timed"),
        _c("block_size", TIMING, INT, "calls", "calls in the block"),
        _c("block_time_s", TIMING, FLOAT64, "s", "wall time of the block; per call: block_time_s / block_size"),
    ),
    LYAPUNOV: (
        _JOB,
        _DIRECTION,
        _c("index", INDEX, INT, "", "rank of the exponent, 0 = largest"),
        _c("exponent", STATISTIC, FLOAT64, "1/step", "Lyapunov exponent", FLOAT),
    ),
}

RESULT_COLUMNS: tuple[Column, ...] = (
    *_config_columns(),
    *_PROVENANCE[:2],  # concurrent_jobs, device_used: how the job was placed
    *_SHAPE,
    *_TIMING,
    *_WORK,
    *_STATISTIC,
    *_PARITY,
    *_OUTCOME,
    *_PROVENANCE[2:],
)
TABLES: dict[str, tuple[Column, ...]] = {RESULTS: RESULT_COLUMNS, **SIDE_TABLES}
_BY_NAME = {t: {c.name: c for c in cols} for t, cols in TABLES.items()}


def columns(table: str = RESULTS) -> tuple[Column, ...]:
    """The declared columns of ``table``, in the order they are written."""
    return TABLES[table]


def names(table: str = RESULTS) -> list[str]:
    return [c.name for c in TABLES[table]]


def column(name: str, table: str = RESULTS) -> Column | None:
    """A declared column by name, or None for a name the registry lacks."""
    return _BY_NAME[table].get(name)


def of_kind(kind: str, table: str = RESULTS) -> list[str]:
    return [c.name for c in TABLES[table] if c.kind == kind]


def with_rule(*rules: str, table: str = RESULTS) -> list[str]:
    return [c.name for c in TABLES[table] if c.rule in rules]


def config_keys() -> list[str]:
    """The columns rows are matched on: every config key but the timing settings."""
    return with_rule(KEY)


def _names(names) -> str:
    """Column names for a log line; one holding a control character (a doctored header) as its repr."""
    return ", ".join(n if str(n).isprintable() else ascii(n) for n in names)


def conform(row: dict, table: str = RESULTS) -> dict:
    """Every declared column of ``table`` in order (missing ones None), then any undeclared ones.

    Undeclared names are kept, never dropped, and logged: the registry should declare them.
    """
    declared = names(table)
    out = {name: row.get(name) for name in declared}
    extra = [k for k in row if k not in out]
    if extra:
        log.warning("%s: undeclared columns %s (declare them in rnnexp/schema.py)", table, _names(extra))
        out.update({k: row[k] for k in extra})
    return out


def conform_frame(df: pd.DataFrame, table: str = RESULTS) -> pd.DataFrame:
    """A table with every declared column in order (missing ones empty), undeclared ones kept at the end."""
    declared = names(table)
    extra = [c for c in df.columns if c not in set(declared)]
    if extra:
        log.warning("%s: undeclared columns %s (declare them in rnnexp/schema.py)", table, _names(extra))
    return df.reindex(columns=[*declared, *extra])


class TableError(ValueError):
    """A file that is not a readable table of its kind; the message is one line naming it."""


class TruncatedError(TableError):
    """A table whose last line was cut off (a write that never finished), or that does not parse."""


_TRUE, _FALSE = {"true", "1", "1.0", "yes"}, {"false", "0", "0.0", "no"}


def _as_bool(values: pd.Series) -> pd.Series:
    text = values.str.strip().str.lower()
    out = pd.Series(pd.NA, index=values.index, dtype=BOOL)
    out[text.isin(_TRUE).fillna(False)] = True
    out[text.isin(_FALSE).fillna(False)] = False
    bad = values.notna() & out.isna()
    if bad.any():
        raise ValueError(f"{values[bad].iloc[0]!r} is not a boolean")
    return out


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def _whole(value) -> int:
    """One cell as an int within int64: ``7``, ``7.0``, ``1e3``; ValueError naming it otherwise."""
    if isinstance(value, str):
        text = value.strip()
        try:
            number = int(text)
        except ValueError:
            number = float(text)  # ValueError for text that is no number at all
    else:
        number = value
    if (isinstance(number, float) and not number.is_integer()) or not INT64_MIN <= number <= INT64_MAX:
        raise ValueError(f"{value} is not a whole number within the 64-bit integer range")  # inf and nan too
    return int(number)


def _as_int(values: pd.Series) -> pd.Series:
    """Whole numbers as Int64; a value past int64 (``1e400``, a 30-digit seed) is a ValueError, never wrapped."""
    if pd.api.types.is_integer_dtype(values) and not pd.api.types.is_unsigned_integer_dtype(values):
        return values.astype(INT)
    present = values.notna().to_numpy()
    cells = values.to_numpy(dtype=object)
    parsed = [_whole(v) if p else pd.NA for v, p in zip(cells, present, strict=True)]
    return pd.Series(pd.array(parsed, dtype=INT), index=values.index)


def coerce(df: pd.DataFrame, table: str = RESULTS, where: str = "") -> pd.DataFrame:
    """Declared columns given their declared dtypes (text as read, or values of another dtype)."""
    out = df.copy()
    for name in out.columns:
        col = column(name, table)
        if col is None:
            continue
        values = out[name]
        try:
            if col.dtype == STR:
                text = values.astype("string")
                out[name] = text.mask(text == "")
            elif col.dtype == BOOL:
                out[name] = _as_bool(values.astype("string"))
            elif col.dtype == INT:
                out[name] = _as_int(values)
            else:  # "nan" as Python's csv module writes a NaN (pandas writes it empty): missing either way
                if not pd.api.types.is_numeric_dtype(values):
                    values = values.mask(values.astype("string").str.strip().str.lower() == "nan")
                out[name] = pd.to_numeric(values, errors="raise").astype(col.dtype)
        except (ValueError, TypeError, OverflowError) as exc:
            raise TableError(f"{where or table}: column {name}: {exc} (declared {col.dtype})") from None
    return out


def _last_record_cut(path: Path, text: str, header: list[str]) -> int | None:
    """Fields in the last record when it was cut off (no newline at the end and too few fields), else None."""
    if text.endswith(("\n", "\r")):
        return None
    records = list(csv.reader(io.StringIO(text)))
    last = records[-1] if len(records) > 1 else None
    return len(last) if last is not None and len(last) < len(header) else None


def read_table(path: Path | str, table: str = RESULTS) -> pd.DataFrame:
    """A CSV with the declared dtypes of ``table``; every declared column present, undeclared ones as read.

    Raises TableError for an empty or unparsable file and TruncatedError for a cut-off one.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise TableError(f"{path}: not a text file") from None
    if not text.strip():
        raise TableError(f"{path}: empty file, not a table")
    header = next(csv.reader(io.StringIO(text)))
    declared = {c: str for c in header if column(c, table) is not None}
    try:
        with warnings.catch_warnings():
            # a row longer than the header: pandas would make an index of it, or drop data with a warning
            warnings.simplefilter("error", pd.errors.ParserWarning)
            df = pd.read_csv(io.StringIO(text), dtype=declared, keep_default_na=False, na_values=[""], index_col=False)
    except (pd.errors.ParserError, pd.errors.ParserWarning, csv.Error) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise TruncatedError(f"{path}: truncated or malformed CSV ({reason})") from None
    fields = _last_record_cut(path, text, header)
    if fields is not None:
        raise TruncatedError(f"{path}: truncated: its last line has {fields} of {len(header)} fields")
    if table == RESULTS and not any(c in df.columns for c in config_keys()):
        raise TableError(f"{path}: not a results table (no configuration columns such as cell, backend)")
    df = coerce(df, table, str(path))
    extra = [c for c in df.columns if column(c, table) is None]
    full = df.reindex(columns=[*names(table), *extra])
    missing = [c for c in names(table) if c not in df.columns]
    return full.astype({c: column(c, table).dtype for c in missing})


@dataclass(frozen=True)
class Range:
    """What a numeric column may hold in a row that ran: finite, at or above ``low`` (above it if ``strict``)."""

    low: float = 0.0
    strict: bool = False

    def bad(self, values: pd.Series) -> pd.Series:
        """Present values outside the range (a missing one is no value, not a bad one)."""
        numbers = pd.to_numeric(values, errors="coerce").astype("float64")
        fine = np.isfinite(numbers) & ((numbers > self.low) if self.strict else (numbers >= self.low))
        return values.notna() & ~fine

    def __str__(self) -> str:
        return f"a finite number {'>' if self.strict else '>='} {self.low:g}"


# Columns whose values a real run can only make in range: a value outside is a damaged or doctored
# table. Statistics and parity errors are left free (an exploding state is a result: h_max=inf).
_AT_LEAST_0 = ("proj_size", "seed", "lyapunov_k", "lyapunov_warmup", "timing_warmup", "timing_iqr_target_frac",
               "timing_noisy_frac", "job_num", "concurrent_jobs", "engine_threads", "load_avg_1m")  # fmt: skip
_ABOVE_0 = ("init_gain", "input_scale", "timing_min_run_time_s", "timing_max_run_time_s", "timing_block_min_s")
RANGES: dict[str, dict[str, Range]] = {
    RESULTS: {
        **{c.name: Range() for c in RESULT_COLUMNS if c.kind in (TIMING, WORK) and c.dtype in (INT, FLOAT64)},
        **{name: Range(1) for name in (*POSITIVE_INTS, "timing_min_blocks")},
        **{name: Range() for name in _AT_LEAST_0},
        **{name: Range(0, strict=True) for name in _ABOVE_0},
    },
    SAMPLES: {"job_num": Range(), "block": Range(), "block_size": Range(1), "block_time_s": Range(0, strict=True)},
    STEPS: {"job_num": Range(), "layer": Range(), "timestep": Range()},
    LAYER_STATS: {"job_num": Range(), "layer": Range()},
    LYAPUNOV: {"job_num": Range(), "index": Range()},
}


def out_of_range(df: pd.DataFrame, table: str = RESULTS) -> list[str]:
    """Each column with a value no run makes (``time_median_ms=inf``, ``hidden_size=-5``), in a phrase.

    In results, only rows that ran are checked: a failed job's row may carry the value it failed on.
    """
    rows = df
    if table == RESULTS and "status" in df:
        rows = df[(df["status"] == "ok").fillna(False).astype(bool)]
    out = []
    for name, allowed in RANGES.get(table, {}).items():
        if name not in rows:
            continue
        bad = allowed.bad(rows[name])
        if bad.any():
            first = rows.index[bad.to_numpy()][0]
            job = rows.at[first, "job_num"] if "job_num" in rows else None
            where = f" (job {job})" if job is not None and not pd.isna(job) else ""
            more = f", and {int(bad.sum()) - 1} more" if bad.sum() > 1 else ""
            out.append(f"column {name}: {rows.at[first, name]}{where}{more} (allowed: {allowed})")
    return out


def markdown_table() -> str:
    """The README's column reference: one pipe table per CSV, generated from the registry."""
    lines = []
    for table, cols in TABLES.items():
        lines += [f"**`{table}`**", "", "| column | kind | dtype | unit | compare | meaning |", "| --- " * 6 + "|"]
        for c in cols:
            meaning = c.meaning.replace("|", "\\|")
            lines.append(f"| `{c.name}` | {c.kind} | {c.dtype} | {c.unit} | {c.rule} | {meaning} |")
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rnnexp.schema", description="The declared columns of every CSV.")
    parser.add_argument("--markdown", action="store_true", help="print the README's column tables")
    args = parser.parse_args(argv)
    if args.markdown:
        sys.stdout.write(markdown_table())
    else:
        for table, cols in TABLES.items():
            print(f"{table}: {', '.join(c.name for c in cols)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
