"""What each results column is for: identifying a configuration, timing, a deterministic result, or provenance.

One classifier, by name pattern, so that a column added later (``h_norm_growth``, ``h_saturation_frac_l0``,
``gflops``) falls into the right category without an edit here. ``report`` and ``compare`` import it; so may
anything that needs "the deterministic columns" (a CI baseline, a launcher-equivalence test).

>>> kind("hidden_size"), kind("time_median_ms"), kind("h_saturation_frac_l0"), kind("torch_version")
('config', 'timing', 'deterministic', 'provenance')
"""

from __future__ import annotations

from dataclasses import dataclass

from rnnexp.config import config_keys

CONFIG = "config"  # identifies a row: compare matches rows on these
TIMING = "timing"  # measured on a machine; differs run to run, judged only noise-aware
DETERMINISTIC = "deterministic"  # same config + seed gives the same value: compared exactly or within tolerance
PROVENANCE = "provenance"  # where and how a row was made: never matched, never compared
OTHER = "other"  # no rule matched: shown, never compared (a new column should get a rule above)

# The configuration: every config key but the ``timing`` group. Timing settings (``timing_*``) are
# provenance, so rows timed with ``timing=quick`` still match a baseline made with ``timing=default``.
CONFIG_COLUMNS: tuple[str, ...] = tuple(k for k in config_keys() if k != "timing")

# Measured on the machine. The ``time_`` / ``peak_`` prefixes and ``_ms`` / ``_s`` / ``gflops`` suffixes
# catch the rest; these are the ones no pattern names.
TIMING_COLUMNS: tuple[str, ...] = ("n_runs", "n_blocks", "block_size", "noisy", "concurrent_jobs")
_TIMING_PREFIXES = ("time_", "peak_")
_TIMING_SUFFIXES = ("_ms", "_s", "gflops")

# The timing columns compare judges, each with the spread that says how noisy it is. The others are
# never judged: a cold first call and a compile time are single samples with no spread, and gflops /
# peak_frac are the median restated, so judging them would count one slowdown twice.
JUDGED_TIMING: dict[str, str] = {
    "time_median_ms": "time_iqr_ms",
    "time_mean_ms": "time_iqr_ms",
    "time_min_ms": "time_iqr_ms",
}
DEFAULT_TIMING: tuple[str, ...] = ("time_median_ms",)

# Results that depend only on the configuration and seed (and, in the last ulps, on the maths library).
DETERMINISTIC_COLUMNS: tuple[str, ...] = ("shape_ok", "status", "flops")
STATISTIC_PREFIXES = ("h_", "c_", "gate_")  # hidden state, cell state, gate activations
_DETERMINISTIC_PREFIXES = (*STATISTIC_PREFIXES, "parity_", "expected_", "max_abs_err")
_DETERMINISTIC_SUFFIXES = ("_shape", "_bytes")

# Versions, how the row was launched, and the error text: the outcome is ``status``; the message
# carries paths and memory figures that differ between machines. ``device_used`` is what
# ``device=auto`` resolved to on this machine.
PROVENANCE_COLUMNS: tuple[str, ...] = ("job_num", "overrides", "command", "error", "device_used", "source")
_PROVENANCE_PREFIXES = ("timing_",)
_PROVENANCE_SUFFIXES = ("_version",)

ERROR_PREFIX = "max_abs_err"  # error figures: lower is better, judged one-sided


@dataclass(frozen=True)
class Tolerance:
    """``new`` agrees with ``base`` when ``|new - base| <= atol + rtol * |base|`` (numpy.isclose's rule).

    ``upper_only``: only growth past the band is a regression; a drop is an improvement.
    """

    rtol: float
    atol: float
    upper_only: bool = False


EXACT = Tolerance(0.0, 0.0)

# Statistics (h_*, c_*, gate_*) and other floats. Backends compute in float32 (eps 1.2e-7); the same
# config and seed give bit-identical values on one machine, but another BLAS build, thread split or
# launcher may reorder sums, moving a few ulps per step, accumulated over timesteps.
# rtol 1e-5 is ~100 float32 ulps of headroom for that; atol 1e-7 (one float32 ulp at 1.0, the scale
# of tanh-bounded states) covers values near zero such as h_mean. A real change (other init, seed,
# cell, a bug) moves these figures by 1e-3 or more. Fractions (h_saturation_frac) change in steps of
# 1/elements, so one element crossing the threshold is reported: a real, if tiny, change.
FLOAT = Tolerance(rtol=1e-5, atol=1e-7)

# max_abs_err_vs_ref is a rounding residue (~1e-8 in float32, ~1e-16 in float64, 0 when a backend
# is the reference), so relative change is meaningless: it may double between maths libraries. It
# regresses only when it grows more than tenfold (rtol 9) and past 1e-12 (atol: far above float64
# residues, far below float32 ones, so float64 noise never counts and a float32-sized error always does).
ERROR = Tolerance(rtol=9.0, atol=1e-12, upper_only=True)


def kind(column: str) -> str:
    """The category of a column, by name: one of CONFIG, PROVENANCE, TIMING, DETERMINISTIC, OTHER."""
    if column in CONFIG_COLUMNS:
        return CONFIG
    if column in PROVENANCE_COLUMNS or column.startswith(_PROVENANCE_PREFIXES) or column.endswith(_PROVENANCE_SUFFIXES):
        return PROVENANCE  # before timing: ``timing_min_run_time_s`` is a setting, not a measurement
    if column in TIMING_COLUMNS or column.startswith(_TIMING_PREFIXES) or column.endswith(_TIMING_SUFFIXES):
        return TIMING
    if (
        column in DETERMINISTIC_COLUMNS
        or column.startswith(_DETERMINISTIC_PREFIXES)
        or column.endswith(_DETERMINISTIC_SUFFIXES)
    ):
        return DETERMINISTIC
    return OTHER


def is_statistic(column: str) -> bool:
    """A state or gate statistic (``h_std``, ``c_abs_max``, ``gate_saturation_frac_l0``), not a shape."""
    return column.startswith(STATISTIC_PREFIXES) and not column.endswith("_shape")


def of_kind(columns, wanted: str) -> list[str]:
    """The columns of one category, in their given order."""
    return [c for c in columns if kind(c) == wanted]


def tolerance(column: str, is_float: bool, override: Tolerance | None = None) -> Tolerance:
    """How closely a deterministic column must agree: exact unless it holds floats.

    ``override`` replaces FLOAT (``compare --rtol/--atol``); error figures keep their one-sided rule.
    """
    if not is_float:
        return EXACT
    if column.startswith(ERROR_PREFIX):
        return ERROR
    return override or FLOAT
