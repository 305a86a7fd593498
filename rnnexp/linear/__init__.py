"""Linear recurrences: minGRU, minLSTM, LRU and S6, whose state obeys h_t = a_t * h_{t-1} + b_t.

Because a_t and b_t depend on the input alone, the recurrence is a prefix scan of the pairs
(a_t, b_t) and can be computed sequentially, by a parallel (associative) scan, or in chunks
(``rnnexp.linear.scans``). Modules: ``cells`` (equations, parameters, initialisation), ``scans``,
``network`` (stacked, bidirectional layers over any array library), ``numpy_backend`` (the float64
reference and the numpy backend), ``grad`` (its hand-written BPTT), ``torch_backend``,
``jax_backend``, ``work`` (FLOPs and bytes), ``lyapunov`` (exact exponents).

This module holds what the rest of rnnexp asks of them: which cells, and the config rules.
"""

from __future__ import annotations

from rnnexp.config import Cell, ConfigError, RunConfig, Scan

LINEAR_CELLS = (Cell.mingru, Cell.minlstm, Cell.lru, Cell.s6)
STATE_CELLS = (Cell.lru, Cell.s6)  # the cells with a state_size of their own
BACKENDS = ("numpy", "torch", "jax")  # the backends that run them
DEFAULTS = {"state_size": 16, "r_min": 0.9, "r_max": 0.999, "max_phase": 6.283185307179586}


def is_linear(cfg_or_cell) -> bool:
    cell = getattr(cfg_or_cell, "cell", cfg_or_cell)
    return cell in LINEAR_CELLS


def _names(cells) -> str:
    return "|".join(c.value for c in cells)


def validate(cfg: RunConfig) -> None:
    """Raise ConfigError for the first rule of the linear cells' keys that ``cfg`` breaks (one line each)."""
    cell = cfg.cell.value
    if not is_linear(cfg) and cfg.scan is not Scan.sequential:
        allowed = f"cell={cell} is not linear in its state: only scan=sequential (others: cell={_names(LINEAR_CELLS)})"
        raise ConfigError("scan", cfg.scan.value, allowed)
    if cfg.state_size != DEFAULTS["state_size"] and cfg.cell not in STATE_CELLS:
        allowed = f"applies to cell={_names(STATE_CELLS)} only, not cell={cell}"
        raise ConfigError("state_size", cfg.state_size, allowed)
    for key in ("r_min", "r_max", "max_phase"):
        if getattr(cfg, key) != DEFAULTS[key] and cfg.cell is not Cell.lru:
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
    from rnnexp import backends

    if cfg.backend in backends.names() and cfg.backend not in BACKENDS:
        raise ConfigError("backend", cfg.backend, f"cannot run cell={cell} (backends that can: {', '.join(BACKENDS)})")
