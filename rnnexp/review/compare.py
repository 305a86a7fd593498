"""``rnnexp compare BASE NEW``: did anything regress between two runs?

Rows are matched on the configuration keys (``rnnexp.schema``, rule ``key``). Deterministic columns
must agree exactly, or within a tolerance for floats; a column empty in both rows is equal.
Timings are judged from the samples (``samples.csv``) with a confidence interval for the ratio
(``rnnexp.review.evidence``) and a minimum effect (``--ratio``): a difference the samples cannot
support is inconclusive and does not fail. Exit status: 0 nothing regressed, 1 something did,
2 unusable input (a missing, malformed or truncated table; no row in common).
"""

from __future__ import annotations

import argparse
import math
import numbers
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from rnnexp import schema
from rnnexp.review import checks, evidence
from rnnexp.review.escape import terminal_text
from rnnexp.review.inputs import InputError, Results, load
from rnnexp.review.output import Printer

PROG = "rnnexp compare"
RATIO = 1.2  # the smallest timing change worth failing over (benchmarks/compare_false_alarms.py)
ALWAYS_NAMED = ("cell", "backend")  # in every row's label, even when they do not vary
LOADED_SHARE = 0.25  # other processes took more than a quarter of a core per second of the job: loaded
SIDE_STATS = (schema.LAYER_STATS, ("layer", "direction", "gate"))


@dataclass(frozen=True)
class Tolerance:
    """``new`` agrees with ``base`` when ``|new - base| <= atol + rtol * |base|`` (numpy.isclose's rule).

    ``upper_only``: only growth past the band is a regression; a drop is an improvement.
    """

    rtol: float
    atol: float
    upper_only: bool = False


# Statistics and other floats. Backends compute in float32 (eps 1.2e-7); the same config and seed give
# bit-identical values on one machine, but another BLAS build, thread split or launcher may reorder sums,
# moving a few ulps per step, accumulated over timesteps. rtol 1e-5 is ~100 float32 ulps of headroom;
# atol 1e-7 (one float32 ulp at 1.0, the scale of tanh-bounded states) covers values near zero such as
# h_mean. A real change (other init, seed, cell, a bug) moves these by 1e-3 or more.
FLOAT = Tolerance(rtol=1e-5, atol=1e-7)
# max_abs_err_vs_ref is a rounding residue (~1e-8 in float32, ~1e-16 in float64, 0 for the reference
# itself): it may double between maths libraries. It regresses only when it grows more than tenfold and
# past 1e-12, so float64 noise never counts and a float32-sized error always does.
ERROR = Tolerance(rtol=9.0, atol=1e-12, upper_only=True)


@dataclass(frozen=True)
class Difference:
    row: str  # the configuration, as ``key=value`` pairs
    column: str
    base: str
    new: str
    note: str
    verdict: str  # REGRESSION fails; faster, fixed, inconclusive, changed, new row are reported only

    @property
    def regression(self) -> bool:
        return self.verdict == "REGRESSION"


def missing(value) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def norm(value) -> str:
    """A value as compared exactly: missing as '', 3 and 3.0 alike, bools as True/False."""
    if missing(value):
        return ""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, numbers.Real) and float(value).is_integer():
        return str(int(value))
    return str(value)


def show(value) -> str:
    if isinstance(value, float) and not missing(value) and not value.is_integer():
        return f"{value:.6g}"
    return norm(value)


def deterministic_change(col: schema.Column, b, n, tol: Tolerance) -> tuple[str, str] | None:
    """(note, verdict) when ``n`` disagrees with ``b``; None when they agree (both empty counts as agreeing)."""
    if missing(b) and missing(n):
        return None
    if missing(n):
        return "value vanished", "REGRESSION"
    if missing(b):
        return "value appeared", "new value"
    if col.rule in (schema.FLOAT, schema.ERROR):
        b, n = float(b), float(n)
        if not (math.isfinite(b) and math.isfinite(n)):
            return non_finite_change(b, n)
        tol = ERROR if col.rule == schema.ERROR else tol
        if abs(n - b) <= tol.atol + tol.rtol * abs(b):
            return None
        if tol.upper_only:
            return (f"grew x{n / b:.3g}" if b else "grew from 0", "REGRESSION") if n > b else ("shrank", "better")
        return f"diff {n - b:+.3g} > atol {tol.atol:g} + rtol {tol.rtol:g}", "REGRESSION"
    if norm(b) == norm(n):
        return None
    if col.name == "status" or col.name.endswith("_ok"):  # outcomes: the direction says which is better
        return ("fixed", "fixed") if norm(n) in ("ok", "True") else ("now failing", "REGRESSION")
    return "changed", "REGRESSION"


def non_finite_change(b: float, n: float) -> tuple[str, str]:
    """(note, verdict) when either value is infinite: such values are never 'the same', whatever they are."""
    if b == n:
        return f"{b:g} in BASE and NEW: not a number to compare", "inconclusive"
    if not math.isfinite(n):
        return f"non-finite in NEW ({n:g})", "REGRESSION"
    return f"non-finite in BASE ({b:g}), finite in NEW", "changed"


def match_keys(base: pd.DataFrame, new: pd.DataFrame) -> tuple[list[str], list[str]]:
    """(keys to match on, keys skipped): a key empty throughout one table (an older file) is not matched on."""
    keys = schema.config_keys()
    on = [k for k in keys if base[k].notna().any() and new[k].notna().any()]
    skipped = [k for k in keys if k not in on and (base[k].notna().any() or new[k].notna().any())]
    return on, skipped


def row_keys(df: pd.DataFrame, on: list[str]) -> list[tuple]:
    """Each row's configuration; a repeated configuration gets its occurrence number, so repeats pair in order."""
    seen: Counter = Counter()
    out = []
    for row in df[on].itertuples(index=False):
        key = tuple(norm(v) for v in row)
        seen[key] += 1
        out.append((*key, seen[key]))
    return out


def labeller(base: pd.DataFrame, new: pd.DataFrame, on: list[str]):
    both = pd.concat([base[on], new[on]]).map(norm)
    shown = [c for c in on if c in ALWAYS_NAMED or both[c].nunique() > 1] or on[:2]
    idx = [on.index(c) for c in shown]
    return lambda key: " ".join(f"{on[i]}={key[i]}" for i in idx) + (f" #{key[-1]}" if key[-1] > 1 else "")


def nearest_difference(key: tuple, others: list[tuple], on: list[str]) -> str:
    """How ``key`` differs from the nearest of ``others``: 'hidden_size 8 vs 9' (the fewest differing keys)."""
    if not others:
        return "NEW has no rows"
    best = min(others, key=lambda o: sum(a != b for a, b in zip(key[:-1], o[:-1], strict=True)))
    pairs = enumerate(zip(key[:-1], best[:-1], strict=True))
    diff = [f"{on[i]} (BASE {a or '(empty)'}, NEW {b or '(empty)'})" for i, (a, b) in pairs if a != b]
    return ", ".join(diff) or "a repeat of a matched configuration"


def samples_of(res: Results, job_num, col: schema.Column) -> np.ndarray | None:
    """A job's per-call times (s) for a judged timing column, from samples.csv; None when there are none."""
    samples = res.side(schema.SAMPLES)
    if samples is None or missing(job_num):
        return None
    mine = samples[samples["job_num"] == job_num]
    for phase in col.phases:
        part = mine[mine["phase"] == phase]
        if len(part):
            return (part["block_time_s"] / part["block_size"]).to_numpy(dtype=float)
    return None


def timing_difference(col, b: dict, n: dict, base: Results, new: Results, ratio: float) -> tuple[str, str] | None:
    """(note, verdict) for a judged timing column; None when the samples show the same time."""
    if missing(b.get(col.name)) or missing(n.get(col.name)):
        return None
    medians = (float(b[col.name]), float(n[col.name]))
    v = evidence.judge(samples_of(base, b.get("job_num"), col), samples_of(new, n.get("job_num"), col), ratio,
                       medians=medians)  # fmt: skip
    if v.verdict == evidence.SAME:
        return None
    label = {evidence.REGRESSION: "REGRESSION", evidence.FASTER: "faster"}.get(v.verdict, v.verdict)
    word = {evidence.REGRESSION: "slower ", evidence.FASTER: "faster "}.get(v.verdict, "")
    return word + v.note(), label


def side_differences(base: Results, new: Results, b: dict, n: dict, tol: Tolerance) -> list[tuple[str, ...]]:
    """Per-layer, per-direction and per-gate statistics (layer_stats.csv) of one matched pair of rows."""
    name, index = SIDE_STATS
    bs, ns = base.side(name), new.side(name)
    if bs is None or ns is None or missing(b.get("job_num")) or missing(n.get("job_num")):
        return []
    part_b = bs[bs["job_num"] == b["job_num"]]
    part_n = ns[ns["job_num"] == n["job_num"]]
    key = lambda r: tuple(norm(r[c]) for c in index)  # noqa: E731
    new_parts = {key(r): r for r in part_n.to_dict("records")}
    out = []
    for r in part_b.to_dict("records"):
        where = ",".join(f"{c}={v}" for c, v in zip(index, key(r), strict=True) if v)
        other = new_parts.pop(key(r), None)
        if other is None:
            out.append((f"{name}[{where}]", "present", "missing", "part missing in NEW", "REGRESSION"))
            continue
        for col in schema.columns(name):
            if col.rule in (schema.FLOAT, schema.EXACT) and (
                change := deterministic_change(col, r[col.name], other[col.name], tol)
            ):
                out.append((f"{name}:{col.name}[{where}]", show(r[col.name]), show(other[col.name]), *change))
    return out


def select(base: pd.DataFrame, new: pd.DataFrame, args) -> tuple[list[schema.Column], list[schema.Column]]:
    """(deterministic, timed) columns to compare."""
    det = [c for c in schema.columns() if c.rule in (schema.EXACT, schema.FLOAT, schema.ERROR)]
    timed = [c for c in schema.columns() if c.rule == schema.TIMED]
    if args.columns:
        bad = [c for c in args.columns if schema.column(c) is None or schema.column(c) not in (*det, *timed)]
        if bad:
            judged = ", ".join(c.name for c in timed)
            raise InputError(f"--columns: {', '.join(bad)} cannot be compared (deterministic columns or {judged})")
        det = [c for c in det if c.name in args.columns]
        timed = [c for c in timed if c.name in args.columns]
    return det, ([] if args.ignore_timing else timed)


def check_evidence(name: str, res: Results) -> list[str]:
    """Refuse samples that are not the rows' own (InputError); notes on ran jobs that have none."""
    samples = res.side(schema.SAMPLES)
    if samples is None:
        return []
    where = f"{name} {res.path}: {schema.SAMPLES}"
    problems = [*checks.orphaned(res.table, {schema.SAMPLES: samples}), *checks.sample_mismatches(res.table, samples)]
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise InputError(f"{where} does not match its {schema.RESULTS}: {problems[0]}{more}; timings cannot be "
                         "judged from samples that are not their rows' own")  # fmt: skip
    lacking = checks.jobs_without_samples(res.table, samples)
    if lacking:
        return [f"{name}: job {checks.job_list(lacking)} ran but {schema.SAMPLES} has no samples for it: "
                "its timing is inconclusive"]  # fmt: skip
    return []


def compare(base: Results, new: Results, args) -> tuple[list[Difference], list[str]]:
    """The differences between two runs, and notes on what was matched and compared."""
    bt, nt = base.table, new.table
    on, skipped = match_keys(bt, nt)
    if not on:
        raise InputError("no configuration column holds values in both tables to match rows on")
    det, timed = select(bt, nt, args)
    evidence_notes = [*check_evidence("BASE", base), *check_evidence("NEW", new)] if timed else []
    label = labeller(bt, nt, on)
    new_keys = row_keys(nt, on)
    new_rows = dict(zip(new_keys, nt.to_dict("records"), strict=True))
    diffs, matched, unmatched = [], 0, []
    for key, b in zip(row_keys(bt, on), bt.to_dict("records"), strict=True):
        n = new_rows.pop(key, None)
        if n is None:
            unmatched.append(key)
            continue
        matched += 1
        diffs += row_differences(label(key), b, n, det, timed, base, new, args)
    if not matched:
        why = Counter(nearest_difference(k, new_keys, on) for k in unmatched).most_common(1)[0][0]
        raise InputError(f"no row of NEW matches a row of BASE by configuration: they differ in {why}")
    for key in unmatched:
        note = f"row missing in NEW (nearest NEW row: {nearest_difference(key, new_keys, on)})"
        diffs.append(Difference(label(key), "(row)", "present", "missing", note, "REGRESSION"))
    diffs += [Difference(label(k), "(row)", "missing", "present", "row only in NEW", "new row") for k in new_rows]
    timing = f"{', '.join(c.name for c in timed)} from samples (past x{args.ratio:g})" if timed else "none"
    if timed and (lacking := [n for n, r in (("BASE", base), ("NEW", new)) if r.side(schema.SAMPLES) is None]):
        timing = f"inconclusive for every row: no {schema.SAMPLES} in {' or '.join(lacking)}"
    notes = [f"{matched} rows matched on {len(on)} config keys; compared {len(det)} deterministic columns; "
             f"timing: {timing}"]  # fmt: skip
    if skipped:
        notes.append(f"not matched on (empty in one table): {', '.join(skipped)}")
    undeclared = sorted({c for c in (*bt.columns, *nt.columns) if schema.column(c) is None} - {"source"})
    if undeclared:
        notes.append(f"not compared (undeclared columns): {', '.join(map(terminal_text, undeclared))}")
    return diffs, notes + evidence_notes


def row_differences(label: str, b: dict, n: dict, det, timed, base: Results, new: Results, args) -> list[Difference]:
    out = []
    status_changed = norm(b.get("status")) != norm(n.get("status"))
    for col in det:
        if status_changed and col.name != "status":
            continue  # a job that failed on one side has no values there: its status says it all
        change = deterministic_change(col, b.get(col.name), n.get(col.name), args.tolerance)
        if change:
            out.append(Difference(label, col.name, show(b.get(col.name)), show(n.get(col.name)), *change))
    if status_changed:
        return out
    if not args.columns:
        out += [Difference(label, *d) for d in side_differences(base, new, b, n, args.tolerance)]
    if norm(b.get("status")) == "ok" and base.side(schema.SAMPLES) is not None and new.side(schema.SAMPLES) is not None:
        for col in timed:
            change = timing_difference(col, b, n, base, new, args.ratio)
            if change:
                out.append(Difference(label, col.name, show(b.get(col.name)), show(n.get(col.name)), *change))
    return out


def _distinct(df: pd.DataFrame, name: str) -> list[str]:
    return sorted({norm(v) for v in df[name]} - {""}) if name in df else []


def warnings(base: Results, new: Results, timing_compared: bool) -> list[str]:
    """What makes BASE and NEW's timings hard to compare: settings, machine, versions, load."""
    out = []
    for col in schema.columns():
        if col.rule != schema.SETTING:
            continue
        b, n = _distinct(base.table, col.name), _distinct(new.table, col.name)
        if b and n and b != n:  # a hostname may hold anything: shown, never acted on by the terminal
            out.append(
                f"{col.name} differs: BASE {', '.join(map(terminal_text, b))}; NEW {', '.join(map(terminal_text, n))}"
            )
    for name, res in (("BASE", base), ("NEW", new)):
        out += [f"{name}: {line}" for line in (*res.busy, *res.missing, *res.notes)]
        out += load_warnings(name, res.table)
    return out if timing_compared or not out else [*out, "(timing was not compared)"]


def load_warnings(name: str, t: pd.DataFrame) -> list[str]:
    out = []
    share = t["other_cpu_s"] / t["job_wall_s"]
    loaded = int((share > LOADED_SHARE).sum())
    if loaded:
        out.append(f"{name} ran under load: in {loaded} of {len(t)} rows other processes took up to "
                   f"{share.max():.2g} CPU-s per s (load_avg_1m up to {t['load_avg_1m'].max():.3g})")  # fmt: skip
    if t["peak_loaded"].fillna(False).any():
        n = int(t["peak_loaded"].fillna(False).sum())
        out.append(f"{name}: peak_frac of {n} rows rests on a GEMM peak measured under load")
    return out


def difference_table(diffs: list[Difference]) -> str:
    """Regressions first, then inconclusive timings, then the rest; one line per row and column."""
    order = {"REGRESSION": 0, "inconclusive": 1}
    head = ("row", "column", "base", "new", "note", "verdict")
    rows = [head] + [tuple(map(terminal_text, (d.row, d.column, d.base, d.new, d.note, d.verdict)))
                     for d in sorted(diffs, key=lambda d: order.get(d.verdict, 2))]  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def _ratio(text: str) -> float:
    value = float(text)
    if not value >= 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Check NEW against BASE. Rows are matched by configuration; deterministic columns (shapes, "
        "statistics, parity, status) must agree exactly, floats within a tolerance, a column empty in both is "
        "equal; timings are judged from samples.csv: a regression needs a 99% confidence interval of the "
        "NEW/BASE time ratio wholly above --ratio, and a difference the samples cannot support is 'inconclusive' "
        "and does not fail. Exit status: 0 nothing regressed, 1 something did, 2 unusable input.",
    )
    parser.add_argument("base", type=Path, metavar="BASE", help="baseline: results.csv, sweep dir, run or job dir")
    parser.add_argument("new", type=Path, metavar="NEW", help="the run to check against BASE")
    parser.add_argument(
        "--columns",
        action="append",
        help="compare only these columns (comma-separated, repeatable); default: every deterministic column "
        "and the judged timings",
    )
    parser.add_argument("--ignore-timing", action="store_true", help="compare deterministic columns only (CI)")
    parser.add_argument(
        "--ratio", type=_ratio, default=RATIO, help=f"smallest timing change that counts, a factor (default {RATIO})"
    )
    parser.add_argument("--rtol", type=float, help=f"relative tolerance for float columns (default {FLOAT.rtol:g})")
    parser.add_argument("--atol", type=float, help=f"absolute tolerance for float columns (default {FLOAT.atol:g})")
    args = parser.parse_args(argv)
    args.columns = [c.strip() for group in args.columns or [] for c in group.split(",") if c.strip()]
    args.tolerance = Tolerance(
        FLOAT.rtol if args.rtol is None else args.rtol, FLOAT.atol if args.atol is None else args.atol
    )
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    out = Printer()
    try:
        base, new = load(args.base), load(args.new)
        diffs, notes = compare(base, new, args)
    except InputError as exc:
        print(f"{PROG}: error: {terminal_text(exc)}", file=sys.stderr)
        return 2
    for name, path, res in (("BASE", args.base, base), ("NEW ", args.new, new)):
        out.say(f"{name} {terminal_text(path)} ({len(res.table)} rows)")
    out.say("\n".join(notes))
    for line in warnings(base, new, not args.ignore_timing):
        out.say(f"warning: {line}")
    if diffs:
        out.say("\n" + difference_table(diffs))
    regressions = sum(d.regression for d in diffs)
    inconclusive = sum(d.verdict == "inconclusive" for d in diffs)
    out.say(f"\n{regressions} regressions, {inconclusive} inconclusive, "
            f"{len(diffs) - regressions - inconclusive} other differences")  # fmt: skip
    out.close()
    return out.exit_code(PROG, 1 if regressions else 0)


if __name__ == "__main__":
    sys.exit(main())
