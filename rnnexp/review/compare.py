"""``rnnexp compare BASE NEW``: did anything regress between two runs?

Rows are matched on the configuration keys (``rnnexp.schema``, rule ``key``), never on what names
a run (job number, dir, command), so a row re-created by its own command matches its sweep's row.
A row on one side only is listed and counted, not failed (``--require-same-rows`` fails it).
Deterministic columns must agree exactly, or within a tolerance for floats; a column empty in both
rows is equal. Timings are judged from the samples (``samples.csv``) with a confidence interval for
the ratio (``rnnexp.review.evidence``) and a minimum effect (``--ratio``), the changes chosen over
all timings together at a false discovery rate (``rnnexp.review.verdicts``): a difference the
samples cannot support is inconclusive and does not fail. Exit status: 0 nothing regressed, 1
something did, 2 unusable input (a missing, malformed or truncated table; no row in common; a
``--csv`` path that cannot be written).
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
from rnnexp.fileio import write_csv_atomic
from rnnexp.review import checks, evidence, verdicts
from rnnexp.review.escape import terminal_text
from rnnexp.review.inputs import InputError, Results, load
from rnnexp.review.keys import by_nesting, order_rows
from rnnexp.review.output import Printer
from rnnexp.review.verdicts import Configuration

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
    verdict: str  # REGRESSION fails; faster, fixed, inconclusive, changed, only-in-* are reported only
    deviation: float = 0.0  # |log NEW/BASE| of a timing: the largest are shown first

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


def timing_note(v: evidence.Verdict) -> tuple[str, str]:
    """(note, verdict) of a judged timing that is not 'same'."""
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


@dataclass
class Timing:
    """One judged timing of a matched pair: decided with every other timing of the comparison (``verdicts``)."""

    config: int  # index into the comparison's configurations
    column: schema.Column
    base: np.ndarray | None
    new: np.ndarray | None
    medians: tuple[float, float]


def compare(base: Results, new: Results, args) -> tuple[list[Difference], list[str], list[Configuration]]:
    """The differences between two runs, notes on what was matched and compared, and one verdict per configuration.

    Rows are matched on the declared configuration keys only, never on what names a run (its job
    number, dir or command), so a row re-created by its own command matches its sweep's row.
    """
    on, skipped = match_keys(base.table, new.table)
    if not on:
        raise InputError("no configuration column holds values in both tables to match rows on")
    order = by_nesting(base.table, on)  # the sweep's own order, as in its results.csv, summary and report
    bt, nt = order_rows(base.table, order), order_rows(new.table, order, first=base.table)
    det, timed = select(bt, nt, args)
    evidence_notes = [*check_evidence("BASE", base), *check_evidence("NEW", new)] if timed else []
    judged = bool(timed) and base.side(schema.SAMPLES) is not None and new.side(schema.SAMPLES) is not None
    label = labeller(bt, nt, on)
    new_keys = row_keys(nt, on)
    new_rows = dict(zip(new_keys, nt.to_dict("records"), strict=True))
    diffs: list[Difference] = []
    configs: list[Configuration] = []
    timings: list[Timing] = []
    unmatched = []
    for key, b in zip(row_keys(bt, on), bt.to_dict("records"), strict=True):
        n = new_rows.pop(key, None)
        if n is None:
            unmatched.append((key, b))
            continue
        mine = row_differences(label(key), b, n, det, base, new, args)
        diffs += mine
        verdict = verdicts.CHANGED if mine else verdicts.SAME
        configs.append(Configuration(key, label(key), verdict, keys={k: b.get(k) for k in on}))
        if norm(b.get("status")) == "ok" and norm(n.get("status")) == "ok":
            timings += [Timing(len(configs) - 1, col, samples_of(base, b.get("job_num"), col) if judged else None,
                               samples_of(new, n.get("job_num"), col) if judged else None,
                               (float(b[col.name]), float(n[col.name])))
                        for col in timed if not missing(b.get(col.name)) and not missing(n.get(col.name))]  # fmt: skip
    if not configs:
        why = Counter(nearest_difference(k, new_keys, on) for k, _ in unmatched).most_common(1)[0][0]
        raise InputError(f"no row of NEW matches a row of BASE by configuration: they differ in {why}")
    decided = verdicts.decide([(t.base, t.new) for t in timings], args.ratio, medians=[t.medians for t in timings])
    for t, v in zip(timings, decided, strict=True):
        if v.verdict != evidence.SAME and judged:  # without samples.csv the notes say it once, not per row
            c = configs[t.config]
            diffs.append(Difference(c.label, t.column.name, show(t.medians[0]), show(t.medians[1]), *timing_note(v),
                                    deviation=abs(math.log(v.ratio)) if v.ratio > 0 else 0.0))  # fmt: skip
    configs = verdicts.per_configuration(configs, [(t.config, v) for t, v in zip(timings, decided, strict=True)])
    one_diffs, one_configs = one_sided(unmatched, list(new_rows.items()), new_keys, on, label, args.require_same_rows)
    diffs += one_diffs
    configs = verdicts.in_order([*configs, *one_configs], order, base.table)
    tests = sum(t.base is not None and t.new is not None for t in timings)
    timing = "none"
    if timed:
        names = ", ".join(c.name for c in timed)
        timing = f"{names} from samples (past x{args.ratio:g}; FDR {verdicts.FDR:.0%} over {tests} timings)"
    if timed and (lacking := [n for n, r in (("BASE", base), ("NEW", new)) if r.side(schema.SAMPLES) is None]):
        timing = f"inconclusive for every row: no {schema.SAMPLES} in {' or '.join(lacking)}"
    matched = sum(c.verdict not in verdicts.ONE_SIDED for c in configs)
    notes = [f"{matched} rows matched on {len(on)} config keys; compared {len(det)} deterministic columns; "
             f"timing: {timing}"]  # fmt: skip
    if skipped:
        notes.append(f"not matched on (empty in one table): {', '.join(skipped)}")
    undeclared = sorted({c for c in (*bt.columns, *nt.columns) if schema.column(c) is None} - {"source"})
    if undeclared:
        notes.append(f"not compared (undeclared columns): {', '.join(map(terminal_text, undeclared))}")
    return diffs, notes + evidence_notes, configs


def one_sided(only_base, only_new, new_keys, on, label, strict: bool) -> tuple[list[Difference], list[Configuration]]:
    """Rows on one side only: listed and counted (benchstat's and pytest-benchmark's way), failed when ``strict``."""
    diffs, configs = [], []
    for side, rows in ((verdicts.ONLY_BASE, only_base), (verdicts.ONLY_NEW, only_new)):
        for key, row in rows:
            if side == verdicts.ONLY_BASE:
                note = f"row only in BASE (nearest NEW row: {nearest_difference(key, new_keys, on)})"
                cells = ("present", "missing")
            else:
                note, cells = "row only in NEW", ("missing", "present")
            diffs.append(Difference(label(key), "(row)", *cells, note, "REGRESSION" if strict else side))
            configs.append(Configuration(key, label(key), side, keys={k: row.get(k) for k in on}))
    return diffs, configs


def row_differences(label: str, b: dict, n: dict, det, base: Results, new: Results, args) -> list[Difference]:
    """The deterministic differences of one matched pair of rows (status, shapes, statistics, parity)."""
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


SHOWN = 20  # difference lines on the terminal without --all: a screen


def difference_table(diffs: list[Difference], limit: int | None = None) -> str:
    """Regressions first, then inconclusive timings, then the rest, the largest deviations first within each;
    one line per row and column; past ``limit`` lines, a count of the rest."""
    order = {"REGRESSION": 0, "inconclusive": 1, verdicts.ONLY_BASE: 3, verdicts.ONLY_NEW: 3}
    ranked = sorted(diffs, key=lambda d: (order.get(d.verdict, 2), -d.deviation))  # stable: the keys' order
    shown = ranked if limit is None else ranked[:limit]
    head = ("row", "column", "base", "new", "note", "verdict")
    rows = [head] + [tuple(map(terminal_text, (d.row, d.column, d.base, d.new, d.note, d.verdict))) for d in shown]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    rest = ranked[len(shown) :]
    if rest:
        kinds = Counter(d.verdict for d in rest)
        lines.append(f"... and {len(rest)} more ({', '.join(f'{n} {v}' for v, n in kinds.most_common())}): "
                     "--all shows every one, --csv PATH writes every configuration's verdict")  # fmt: skip
    return "\n".join(lines)


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
        "and does not fail; the changes are chosen over all timings at a false discovery rate of 1%. Rows on one "
        "side only are listed, not failed (--require-same-rows fails them). Exit status: 0 nothing regressed, "
        "1 something did, 2 unusable input.",
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
    parser.add_argument(
        "--require-same-rows",
        action="store_true",
        help="a row on one side only fails (exit 1), as for a baseline; default: such rows are listed and counted",
    )
    parser.add_argument("--csv", type=Path, metavar="PATH", help="write every configuration's verdict to this CSV")
    parser.add_argument("--all", action="store_true", help=f"print every difference (default: the first {SHOWN})")
    parser.add_argument("--rtol", type=float, help=f"relative tolerance for float columns (default {FLOAT.rtol:g})")
    parser.add_argument("--atol", type=float, help=f"absolute tolerance for float columns (default {FLOAT.atol:g})")
    args = parser.parse_args(argv)
    args.columns = [c.strip() for group in args.columns or [] for c in group.split(",") if c.strip()]
    args.tolerance = Tolerance(
        FLOAT.rtol if args.rtol is None else args.rtol, FLOAT.atol if args.atol is None else args.atol
    )
    return args


def write_verdicts(path: Path, configs: list[Configuration], keys: list[str]) -> None:
    """The verdicts table, whole or not at all; a path that cannot be written is bad input (InputError)."""
    if path.is_dir() or not path.name:  # '.', '..', 'out/': no file name to write
        raise InputError(f"--csv {path}: is a directory (give a file path for the verdicts table)")
    try:
        write_csv_atomic(verdicts.table(configs, keys), path)
    except OSError as exc:
        raise InputError(f"--csv {path}: {exc.strerror or exc} (give a file path that can be written)") from None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    out = Printer()
    try:
        base, new = load(args.base), load(args.new)
        diffs, notes, configs = compare(base, new, args)
        if args.csv is not None:  # before anything is printed: a bad path is one line, not a report and a line
            write_verdicts(args.csv, configs, list(configs[0].keys))
    except InputError as exc:
        print(f"{PROG}: error: {terminal_text(exc)}", file=sys.stderr)
        return 2
    for name, path, res in (("BASE", args.base, base), ("NEW ", args.new, new)):
        out.say(f"{name} {terminal_text(path)} ({len(res.table)} rows)")
    out.say("\n".join(notes))
    for line in warnings(base, new, not args.ignore_timing):
        out.say(f"warning: {line}")
    if diffs:
        out.say("\n" + difference_table(diffs, None if args.all else SHOWN))
    regressions = sum(d.regression for d in diffs)
    inconclusive = sum(d.verdict == "inconclusive" for d in diffs)
    out.say("\n" + verdicts.summary(configs))
    if args.csv is not None:
        out.say(f"verdicts: {terminal_text(args.csv)}")
    out.say(f"{regressions} regressions, {inconclusive} inconclusive, "
            f"{len(diffs) - regressions - inconclusive} other differences")  # fmt: skip
    out.close()
    return out.exit_code(PROG, 1 if regressions else 0)


if __name__ == "__main__":
    sys.exit(main())
