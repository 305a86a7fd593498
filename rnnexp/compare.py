"""``rnnexp compare BASE NEW``: did anything regress between two result tables?

Rows are matched by configuration. Deterministic columns must agree exactly, or within the
tolerance ``rnnexp.columns`` states for floats; timing counts only past both a ratio and the runs'
IQR. Exit status: 0 nothing regressed, 1 something did, 2 unusable input.
"""

from __future__ import annotations

import argparse
import numbers
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from rnnexp import columns
from rnnexp.columns import Tolerance
from rnnexp.report import InputError, read_results

PROG = "rnnexp compare"
RATIO = 1.1  # a timing change counts only past this factor (and past the IQR)
ALWAYS_NAMED = ("cell", "backend")  # in every row's label, even when they do not vary


@dataclass(frozen=True)
class Difference:
    row: str  # the configuration, as ``key=value`` pairs
    column: str
    base: str
    new: str
    note: str
    regression: bool


def _norm(value) -> str:
    """A value as compared exactly: NaN and '' alike, 3 and 3.0 alike, bools and 'True' alike."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, numbers.Real) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _show(value) -> str:
    return f"{value:.6g}" if _is_float(value) else _norm(value)


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_float(value) -> bool:
    """A number with a fraction (or NaN): compared within a tolerance. Whole numbers, like strings, compare exactly."""
    return _is_real(value) and not float(value).is_integer()


def _number(value) -> float:
    return float(value) if _is_real(value) else float("nan")  # text in a timing column: nothing to judge


def _keys(df: pd.DataFrame, on: list[str]) -> list[tuple]:
    """Each row's configuration; a repeated configuration gets its occurrence number, so repeats pair in order."""
    plain = [tuple(_norm(v) for v in row) for row in df[on].itertuples(index=False)]
    seen: dict[tuple, int] = {}
    out = []
    for key in plain:
        seen[key] = seen.get(key, 0) + 1
        out.append((*key, seen[key]))
    return out


def _labeller(base: pd.DataFrame, new: pd.DataFrame, on: list[str]):
    both = pd.concat([base[on], new[on]]).map(_norm)
    shown = [c for c in on if c in ALWAYS_NAMED or both[c].nunique() > 1] or on[:2]
    idx = [on.index(c) for c in shown]
    return lambda key: " ".join(f"{on[i]}={key[i]}" for i in idx) + (f" #{key[-1]}" if key[-1] > 1 else "")


def deterministic_change(column: str, b, n, override: Tolerance | None) -> tuple[str, bool] | None:
    """(note, regression) when ``n`` disagrees with ``b``; None when they agree."""
    if _is_real(b) and _is_real(n) and (_is_float(b) or _is_float(n)):
        if pd.isna(b) or pd.isna(n):
            return None if pd.isna(b) and pd.isna(n) else ("value appeared or vanished", True)
        tol = columns.tolerance(column, True, override)
        if abs(n - b) <= tol.atol + tol.rtol * abs(b):
            return None
        if tol.upper_only:  # an error figure: only growth past the band matters, and it can only grow past it
            return f"grew x{n / b:.3g}" if b else "grew from 0", True
        return f"diff {n - b:+.3g} > atol {tol.atol:g} + rtol {tol.rtol:g}", True
    if _norm(b) == _norm(n):
        return None
    if column == "status" or column.endswith("_ok"):  # outcomes: the direction says which is better
        better = _norm(n) in ("ok", "True")
        return ("fixed", False) if better else ("now failing", True)
    return "changed", True


def timing_change(b: float, n: float, noise: float, ratio: float) -> tuple[str, bool] | None:
    """A change past both the ratio and the noise (the larger IQR); slower is a regression."""
    if pd.isna(b) or pd.isna(n) or b <= 0:
        return None
    factor, delta = n / b, n - b
    note = f"x{factor:.2f} ({delta:+.3g} ms; IQR {noise:.2g})"
    if factor > ratio and delta > noise:
        return f"slower {note}", True
    if factor < 1 / ratio and -delta > noise:
        return f"faster {note}", False
    return None


def _noise(b: dict, n: dict, spread: str) -> float:
    values = [_number(r[spread]) for r in (b, n) if spread in r]
    return max([v for v in values if pd.notna(v)], default=0.0)  # no IQR recorded: the ratio alone decides


def _ok(row: dict) -> bool:
    return "status" not in row or row["status"] == "ok"


def compare_rows(b: dict, n: dict, det: list[str], timed: list[str], args) -> list[tuple[str, str, bool]]:
    """(column, note, regression) for each disagreement between a matched pair of rows."""
    out = []
    if "status" in b and "status" in n and (change := deterministic_change("status", b["status"], n["status"], None)):
        out.append(("status", *change))
    if not (_ok(b) and _ok(n)):
        return out  # a failed row has no results to compare
    for col in det:
        if col != "status" and (change := deterministic_change(col, b[col], n[col], args.tolerance)):
            out.append((col, *change))
    for col in timed:
        change = timing_change(_number(b[col]), _number(n[col]), _noise(b, n, columns.JUDGED_TIMING[col]), args.ratio)
        if change:
            out.append((col, *change))
    return out


def select(base: pd.DataFrame, new: pd.DataFrame, args) -> tuple[list[str], list[str], list[str]]:
    """(deterministic, timed, notes): the columns to compare and what was left out and why."""
    det = [c for c in columns.of_kind(base.columns, columns.DETERMINISTIC)]
    timed = [c for c in columns.DEFAULT_TIMING if c in base and c in new]
    if args.columns:
        bad = [c for c in args.columns if columns.kind(c) != columns.DETERMINISTIC and c not in columns.JUDGED_TIMING]
        if bad:
            judged = ", ".join(columns.JUDGED_TIMING)
            raise InputError(f"--columns: {', '.join(bad)} cannot be compared (deterministic columns or {judged})")
        det, timed = (
            [c for c in args.columns if c not in columns.JUDGED_TIMING],
            [c for c in args.columns if c in columns.JUDGED_TIMING],
        )
        if absent := [c for c in args.columns if c not in base or c not in new]:
            raise InputError(f"--columns: {', '.join(absent)} not in both tables")
    notes = []
    if args.ignore_timing:
        timed = []
    elif not timed:
        notes.append("timing not compared (no time_median_ms in both tables)")
    return det, timed, notes


def compare(base: pd.DataFrame, new: pd.DataFrame, args) -> tuple[list[Difference], list[str]]:
    """The differences between two tables, and notes on what was matched and compared."""
    on = [c for c in columns.CONFIG_COLUMNS if c in base and c in new]
    if not on:
        raise InputError("no configuration column in both tables to match rows on")
    det, timed, notes = select(base, new, args)
    label = _labeller(base, new, on)
    new_rows = dict(zip(_keys(new, on), new.to_dict("records"), strict=True))
    diffs, matched = [], 0
    for col in [c for c in det if c not in new]:  # the baseline promises a column the new table dropped
        diffs.append(Difference("(every row)", col, "present", "absent", "column missing in NEW", True))
    for key, b in zip(_keys(base, on), base.to_dict("records"), strict=True):
        n = new_rows.pop(key, None)
        if n is None:
            diffs.append(Difference(label(key), "(row)", "present", "missing", "row missing in NEW", True))
            continue
        matched += 1
        for col, note, bad in compare_rows(b, n, [c for c in det if c in new], timed, args):
            diffs.append(Difference(label(key), col, _show(b[col]), _show(n[col]), note, bad))
    if not matched:
        raise InputError(f"no row of NEW matches a row of BASE by configuration ({', '.join(on)})")
    diffs += [Difference(label(k), "(row)", "missing", "present", "row only in NEW", False) for k in new_rows]
    timing = f"{', '.join(timed)} (past x{args.ratio:g} and the IQR)" if timed else "none"
    notes.insert(
        0, f"{matched} rows matched on {len(on)} config columns; compared {len(det)} deterministic, timing: {timing}"
    )
    return diffs, notes


def difference_table(diffs: list[Difference]) -> str:
    """Regressions first, then the rest (faster, fixed, rows only in NEW); one line per row and column."""
    head = ("row", "column", "base", "new", "note", "verdict")
    rows = [head] + [
        (d.row, d.column, d.base, d.new, d.note, "REGRESSION" if d.regression else "ok")
        for d in sorted(diffs, key=lambda d: not d.regression)
    ]
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
        "statistics, parity, status) must agree exactly, floats within a tolerance; a timing change counts only "
        "past both --ratio and the runs' IQR, and only a slowdown fails. Exit status: 0 nothing regressed, "
        "1 something did, 2 unusable input.",
    )
    parser.add_argument("base", type=Path, metavar="BASE", help="baseline: results.csv, sweep dir or run dir")
    parser.add_argument("new", type=Path, metavar="NEW", help="the table to check against BASE")
    parser.add_argument(
        "--columns",
        action="append",
        help="compare only these columns (comma-separated, repeatable); default: every deterministic column "
        "in BASE and time_median_ms",
    )
    parser.add_argument("--ignore-timing", action="store_true", help="compare deterministic columns only (CI)")
    parser.add_argument("--ratio", type=_ratio, default=RATIO, help=f"timing change threshold factor (default {RATIO})")
    parser.add_argument(
        "--rtol", type=float, help=f"relative tolerance for float columns (default {columns.FLOAT.rtol:g})"
    )
    parser.add_argument(
        "--atol", type=float, help=f"absolute tolerance for float columns (default {columns.FLOAT.atol:g})"
    )
    args = parser.parse_args(argv)
    args.columns = [c.strip() for group in args.columns or [] for c in group.split(",") if c.strip()]
    args.tolerance = None
    if args.rtol is not None or args.atol is not None:
        rtol, atol = columns.FLOAT.rtol, columns.FLOAT.atol
        args.tolerance = Tolerance(rtol if args.rtol is None else args.rtol, atol if args.atol is None else args.atol)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        base, new = read_results(args.base), read_results(args.new)
        diffs, notes = compare(base, new, args)
    except InputError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    print(f"BASE {args.base} ({len(base)} rows)\nNEW  {args.new} ({len(new)} rows)\n" + "\n".join(notes))
    if diffs:
        print("\n" + difference_table(diffs))
    regressions = sum(d.regression for d in diffs)
    print(f"\n{regressions} regressions, {len(diffs) - regressions} other differences")
    return 1 if regressions else 0


if __name__ == "__main__":
    sys.exit(main())
