"""The experiment schema: one flat dataclass whose fields are the config keys and CSV columns.

Types and choices are checked by OmegaConf at compose time (Enums, ints, bools); ranges and
cross-field rules by :func:`validate`, which every entry point calls before a job runs.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Optional  # OmegaConf 2.3 reads Optional[str], not str | None


class Cell(str, Enum):
    rnn = "rnn"
    lstm = "lstm"
    gru = "gru"
    # Linear in their state (rnnexp.linear): h_t = a_t * h_{t-1} + b_t, computed by a scan.
    mingru = "mingru"
    minlstm = "minlstm"
    lru = "lru"
    s6 = "s6"


class Scan(str, Enum):
    """How a linear cell's recurrence h_t = a_t * h_{t-1} + b_t is computed (rnnexp.linear.scans)."""

    sequential = "sequential"  # the loop, T dependent steps
    associative = "associative"  # a log-depth parallel prefix scan of the pairs (a_t, b_t)
    chunked = "chunked"  # each chunk of scan_chunk steps in parallel, the state carried across chunks


class Nonlinearity(str, Enum):
    tanh = "tanh"
    relu = "relu"


class Device(str, Enum):
    cpu = "cpu"
    cuda = "cuda"
    auto = "auto"


class Dtype(str, Enum):
    float32 = "float32"
    float64 = "float64"


class Init(str, Enum):
    torch_default = "torch_default"
    uniform01 = "uniform01"
    normal = "normal"
    xavier_uniform = "xavier_uniform"
    orthogonal = "orthogonal"


class InputDist(str, Enum):
    uniform01 = "uniform01"
    normal = "normal"
    zeros = "zeros"
    ones = "ones"


class Mode(str, Enum):
    inference = "inference"  # the forward pass alone, no graph recorded
    training = "training"  # a forward that records what the backward needs, then the backward


@dataclass
class TimingConfig:
    """How a forward pass is timed (the method of ``torch.utils.benchmark``'s adaptive_autorange)."""

    warmup: int = 2  # untimed calls after the cold first call
    min_run_time_s: float = 0.2  # keep collecting blocks at least this long
    max_run_time_s: float = 2.0  # stop collecting blocks after this long, noisy or not
    min_blocks: int = 5
    block_min_s: float = 0.01  # a block lasts at least this long (and timer overhead <= 1e-3 of it)
    iqr_target_frac: float = 0.0  # stop early once IQR/median falls under this (0 = never early)
    noisy_frac: float = 0.10  # a row is flagged noisy when IQR/median exceeds this


class Tracker(str, Enum):
    none = "none"  # jobs are recorded in their dirs (and the history store) only
    mlflow = "mlflow"  # each job also an MLflow run, nested under its sweep's run (hydra_plugins/.../tracking.py)


DEFAULT_STORE = "outputs/history.duckdb"  # relative to the dir rnnexp was started in (rnnexp.store)


@dataclass
class TrackingConfig:
    """Where each job is logged besides its dir (conf/tracking/*.yaml): nowhere, or an MLflow tracking store."""

    backend: Tracker = Tracker.none
    uri: Optional[str] = None  # noqa: UP045 - MLflow tracking URI; None: a local store beside the history store
    experiment: str = "rnnexp"  # the MLflow experiment, created when missing


@dataclass
class RunConfig:
    """One job. Defaults are the tutorial's memory cell: 10 steps, 5 inputs, 8 hidden units."""

    cell: Cell = Cell.rnn
    input_size: int = 5
    hidden_size: int = 8
    layers: int = 1
    bidirectional: bool = False
    timesteps: int = 10
    batch_size: int = 1
    batch_first: bool = True
    nonlinearity: Nonlinearity = Nonlinearity.tanh  # rnn only
    bias: bool = True
    proj_size: int = 0  # lstm only; 0 = no projection
    backend: str = "torch"
    device: Device = Device.cpu
    dtype: Dtype = Dtype.float32
    seed: int = 0
    init: Init = Init.torch_default
    init_gain: float = 1.0
    input_dist: InputDist = InputDist.normal
    input_scale: float = 1.0
    threads: int = 1
    mode: Mode = Mode.inference
    lyapunov_k: int = 0  # 0 = off; k >= 1: the k largest Lyapunov exponents of the state dynamics
    lyapunov_warmup: int = 200  # steps evolved before exponents are averaged
    grad_flow: bool = False  # the norm of dL/dh_t against the distance to the end
    # Linear cells (mingru, minlstm, lru, s6) only; see rnnexp.linear and its validate().
    scan: Scan = Scan.sequential
    scan_chunk: int = 64  # steps per chunk of scan=chunked
    log_space: bool = False  # mingru/minlstm: the papers' log-space form (h~ = g(.) > 0; parallel scans on logs)
    state_size: int = 16  # lru: complex state N; s6: state per channel N
    r_min: float = 0.9  # lru: eigenvalue moduli drawn on the ring r_min <= |lambda| <= r_max
    r_max: float = 0.999
    max_phase: float = 6.283185307179586  # lru: eigenvalue phases drawn in [0, max_phase)
    timing: TimingConfig = field(default_factory=TimingConfig)
    # Settings of the whole run or sweep, not of a job (SESSION_KEYS): never a column of the row.
    store: Optional[str] = DEFAULT_STORE  # noqa: UP045 - the history store finished sweeps go to; null = none
    tracking: TrackingConfig = field(default_factory=TrackingConfig)


# Keys that say where results go, not what a job computes: one value per run or sweep, outside the row.
SESSION_KEYS = ("store", "tracking")


class ConfigError(ValueError):
    """A bad value for one key; the message is one line naming the key, the value and what is allowed."""

    def __init__(self, key: str, value: object, allowed: str):
        self.key, self.value, self.allowed = key, value, allowed
        super().__init__(f"{key}={value!s}: {allowed}")


POSITIVE_INTS = ("input_size", "hidden_size", "layers", "timesteps", "batch_size", "threads")
INT64_MAX = 2**63 - 1
# Every integer key's range, by its dotted name. The ceiling of most is int64's: the table's integer
# columns hold no more, nor does torch.manual_seed (it takes -2**63 to 2**64 - 1; NumPy's default_rng
# any int >= 0). Sizes have no tighter ceiling here: the memory guard (runner.check_memory) refuses
# what would not fit. Counts of calls are bounded so that a typo cannot run for hours.
INT_RANGES: dict[str, tuple[int, int]] = {
    **dict.fromkeys(POSITIVE_INTS, (1, INT64_MAX)),
    **dict.fromkeys(("proj_size", "seed", "lyapunov_k", "lyapunov_warmup"), (0, INT64_MAX)),
    "timing.warmup": (0, 1000),
    "timing.min_blocks": (1, 1000),
}


def conf_dir() -> Path:
    """The configs: shipped inside the package when installed, the repo's conf/ in a checkout."""
    installed = Path(__file__).resolve().parent / "conf"
    return installed if installed.is_dir() else installed.parent.parent / "conf"


def config_keys() -> list[str]:
    """The flat keys a user may override (``timing`` is a config group)."""
    return [f.name for f in dataclasses.fields(RunConfig)]


def suggest_key(key: str, extra: tuple[str, ...] = ()) -> str:
    """Return ' (did you mean X?)' for a near miss of a known key (or of ``extra`` names), else ''.

    Timing settings are offered as ``timing.X``, also for a bare ``X``: ``warmup`` -> ``timing.warmup``.
    """
    known = {k: k for k in (*config_keys(), *extra)}
    for f in dataclasses.fields(TimingConfig):
        known.setdefault(f.name, f"timing.{f.name}")
        known[f"timing.{f.name}"] = f"timing.{f.name}"
    if key.startswith("timing."):  # a timing setting is one of timing's, never a top-level key
        known = {k: v for k, v in known.items() if k.startswith("timing.")}
    close = difflib.get_close_matches(key, list(known), n=1)
    return f" (did you mean {known[close[0]]}?)" if close else ""


def check_values(cfg: RunConfig) -> None:
    """The rules that depend on the config alone (ranges, cross-field rules), not on the machine or backend:
    a config that breaks one is refused wherever and whenever it runs."""
    for key, (lo, hi) in INT_RANGES.items():
        check_int(key, _get(cfg, key), lo, hi)
    check_linear(cfg)  # before proj_size's own rules: a linear cell names itself
    if cfg.proj_size and cfg.cell is not Cell.lstm:
        raise ConfigError("proj_size", cfg.proj_size, f"applies to cell=lstm only, not cell={cfg.cell.value}")
    if cfg.proj_size >= cfg.hidden_size:
        raise ConfigError("proj_size", cfg.proj_size, f"must be < hidden_size ({cfg.hidden_size})")
    if cfg.cell is not Cell.rnn and cfg.nonlinearity is not Nonlinearity.tanh:
        raise ConfigError(
            "nonlinearity", cfg.nonlinearity.value, f"applies to cell=rnn only (cell={cfg.cell.value} has fixed gates)"
        )
    for key in ("init_gain", "input_scale"):
        value = getattr(cfg, key)
        if not (value > 0 and math.isfinite(value)):
            raise ConfigError(key, value, "must be a positive finite number")
    validate_timing(cfg.timing)
    validate_session(cfg)


def _get(cfg: RunConfig, key: str) -> object:
    owner, _, name = key.rpartition(".")
    return getattr(getattr(cfg, owner) if owner else cfg, name)


def int_rule(lo: int, hi: int) -> str:
    """What ``check_int`` allows, in words (the lower bound as the schema's messages have always said it)."""
    words = {0: "an integer >= 0", 1: "a positive integer (>= 1)"}.get(lo, f"an integer >= {lo}")
    return f"must be {words}" + ("" if hi == INT64_MAX else f" and <= {hi}")


def check_int(key: str, value: object, lo: int, hi: int) -> None:
    """ConfigError naming ``key`` unless ``value`` is an int from ``lo`` to ``hi``; the message names the range."""
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise ConfigError(key, value, int_rule(lo, hi))
    if value > hi:
        ceiling = " (2**63 - 1, the most a table's integer column holds)" if hi == INT64_MAX else ""
        raise ConfigError(key, value, f"{int_rule(lo, INT64_MAX)} and <= {hi}{ceiling}")


def validate_timing(t: TimingConfig) -> None:
    for key in ("warmup", "min_blocks"):
        check_int(f"timing.{key}", getattr(t, key), *INT_RANGES[f"timing.{key}"])
    for key in ("min_run_time_s", "max_run_time_s", "block_min_s"):
        if not (getattr(t, key) > 0 and math.isfinite(getattr(t, key))):
            raise ConfigError(f"timing.{key}", getattr(t, key), "must be a positive finite number of seconds")
    if t.max_run_time_s < t.min_run_time_s:
        raise ConfigError("timing.max_run_time_s", t.max_run_time_s, f"must be >= min_run_time_s ({t.min_run_time_s})")
    for key in ("iqr_target_frac", "noisy_frac"):
        if not (getattr(t, key) >= 0 and math.isfinite(getattr(t, key))):
            raise ConfigError(f"timing.{key}", getattr(t, key), "must be >= 0 and finite (a fraction of the median)")


def validate_session(cfg: RunConfig) -> None:
    """The store and tracking settings' own rules (the store's dir and file are checked where it is opened)."""
    if cfg.store is not None and not str(cfg.store).strip():
        raise ConfigError("store", cfg.store, "must be a file path (e.g. outputs/history.duckdb), or null for no store")
    if not str(cfg.tracking.experiment).strip():
        raise ConfigError("tracking.experiment", cfg.tracking.experiment, "must be a non-empty MLflow experiment name")
    if cfg.tracking.uri is not None and not str(cfg.tracking.uri).strip():
        raise ConfigError("tracking.uri", cfg.tracking.uri, "must be an MLflow tracking URI, or null for a local store")


def as_flat_dict(cfg: RunConfig) -> dict[str, object]:
    """The config as CSV columns: enums by value, timing settings prefixed ``timing_``; no session keys.

    An integer no table column can hold (beyond int64) is refused here, with its key's own rule: such a
    value could be neither a row nor a manifest entry that reads back, so a sweep is refused up front.
    """
    for key, (lo, hi) in INT_RANGES.items():
        value = _get(cfg, key)
        if isinstance(value, int) and not -INT64_MAX - 1 <= value <= INT64_MAX:
            check_int(key, value, lo, hi)
    out: dict[str, object] = {}
    for f in dataclasses.fields(cfg):
        if f.name in SESSION_KEYS:
            continue
        value = getattr(cfg, f.name)
        if isinstance(value, TimingConfig):
            out.update({f"timing_{k}": v for k, v in dataclasses.asdict(value).items()})
        else:
            out[f.name] = value.value if isinstance(value, Enum) else value
    return out


def from_flat_dict(flat: dict[str, object]) -> RunConfig | None:
    """The config that ``as_flat_dict`` made ``flat`` from; None if ``flat`` is not one this schema reads."""
    timing = {f.name: flat[f"timing_{f.name}"] for f in dataclasses.fields(TimingConfig) if f"timing_{f.name}" in flat}
    values = {k: v for k, v in flat.items() if not k.startswith("timing_")}
    try:
        kinds = {f.name: f.type for f in dataclasses.fields(RunConfig)}
        for key, value in values.items():
            kind = globals().get(kinds[key]) if isinstance(kinds[key], str) else kinds[key]
            if isinstance(kind, type) and issubclass(kind, Enum):
                values[key] = kind(value)
        return RunConfig(**values, timing=TimingConfig(**timing))
    except (KeyError, TypeError, ValueError):
        return None


# --------------------------------------------------------------------------- linear cells' rules (rnnexp.linear)

LINEAR_CELLS = (Cell.mingru, Cell.minlstm, Cell.lru, Cell.s6)
STATE_CELLS = (Cell.lru, Cell.s6)  # the cells with a state_size of their own
LINEAR_DEFAULTS = {"state_size": 16, "r_min": 0.9, "r_max": 0.999, "max_phase": 6.283185307179586}


def is_linear(cfg_or_cell) -> bool:
    cell = getattr(cfg_or_cell, "cell", cfg_or_cell)
    return cell in LINEAR_CELLS


def _cell_names(cells) -> str:
    return "|".join(c.value for c in cells)


def check_linear(cfg: RunConfig) -> None:
    """Raise ConfigError for the first rule of the linear cells' keys that ``cfg`` breaks (one line each)."""
    cell = cfg.cell.value
    if not is_linear(cfg) and cfg.scan is not Scan.sequential:
        allowed = (
            f"cell={cell} is not linear in its state: only scan=sequential (others: cell={_cell_names(LINEAR_CELLS)})"
        )
        raise ConfigError("scan", cfg.scan.value, allowed)
    if cfg.state_size != LINEAR_DEFAULTS["state_size"] and cfg.cell not in STATE_CELLS:
        allowed = f"applies to cell={_cell_names(STATE_CELLS)} only, not cell={cell}"
        raise ConfigError("state_size", cfg.state_size, allowed)
    for key in ("r_min", "r_max", "max_phase"):
        if getattr(cfg, key) != LINEAR_DEFAULTS[key] and cfg.cell is not Cell.lru:
            raise ConfigError(key, getattr(cfg, key), f"applies to cell=lru only, not cell={cell}")
    if cfg.log_space and cfg.cell not in (Cell.mingru, Cell.minlstm):
        raise ConfigError("log_space", True, f"applies to cell=mingru|minlstm only, not cell={cell}")
    if isinstance(cfg.scan_chunk, bool) or not isinstance(cfg.scan_chunk, int) or cfg.scan_chunk < 1:
        raise ConfigError("scan_chunk", cfg.scan_chunk, "must be a positive integer (>= 1)")
    if isinstance(cfg.state_size, bool) or not isinstance(cfg.state_size, int) or cfg.state_size < 1:
        raise ConfigError("state_size", cfg.state_size, "must be a positive integer (>= 1)")
    for key in ("r_min", "r_max"):
        value = getattr(cfg, key)
        if not 0 <= value < 1:
            raise ConfigError(key, value, "must lie in [0, 1) (eigenvalue moduli of a stable LRU)")
    if cfg.r_min > cfg.r_max:
        raise ConfigError("r_min", cfg.r_min, f"must be <= r_max ({cfg.r_max})")
    if not 0 < cfg.max_phase <= 2 * 3.141592653589794:
        raise ConfigError("max_phase", cfg.max_phase, "must lie in (0, 2*pi]")
    if not is_linear(cfg):
        return
    if cfg.proj_size:
        raise ConfigError("proj_size", cfg.proj_size, f"applies to cell=lstm only; cell={cell} has no projection")
