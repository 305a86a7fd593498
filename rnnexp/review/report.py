"""``rnnexp report PATH...``: the tables and plots a person reviews a run with.

Reads sweep dirs, run dirs or results CSVs (an interrupted sweep is rebuilt from its job rows),
prints tables chosen from what varies, and writes ``report.md`` and PNG plots. Every table shows
the fewest configuration keys that tell its rows apart, in one row order.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from rnnexp import backends, schema
from rnnexp.fileio import write_text_atomic
from rnnexp.review import coverage
from rnnexp.review.axes import ok_rows
from rnnexp.review.escape import markdown_cell, terminal_text
from rnnexp.review.inputs import InputError, Results, is_run_dir, load_many
from rnnexp.review.keys import minimal_keys, order_rows, text, varying
from rnnexp.review.output import Printer

PROG = "rnnexp report"
REFERENCE = backends.reference()  # the backend speed-ups are measured against, when the input has its rows
SHAPES = ["output_shape", "h_n_shape", "c_n_shape", "shape_ok"]
PHASE_TIMES = ["fwd_time_median_ms", "bwd_data_time_median_ms", "bwd_weights_time_median_ms"]
SHOWN = 20  # rows per table on the terminal without --all: a screen (report.md holds every row)
NOISY = "noisy"  # a speed-up cell where either time is flagged noisy: the ratio is not shown


def index_keys(df: pd.DataFrame) -> list[str]:
    """A table's row keys: the configuration that varies, but backend (a pivot's columns); cell always."""
    return [k for k in varying(df, keep=("cell",)) if k != "backend"]


def tidy(table: pd.DataFrame, keys: list[str], values: list[str], whole: pd.DataFrame) -> pd.DataFrame:
    """Only the keys the values depend on, duplicate rows merged, in the results' row order."""
    keep = minimal_keys(table, keys, values)
    out = table[[*keep, *values]].drop_duplicates()
    return order_rows(out, keep, first=whole)


def time_title(df: pd.DataFrame) -> str:
    modes = set(df["mode"].dropna())
    what = "Training step time" if modes == {"training"} else "Forward time" if modes <= {"inference"} else "Time"
    return f"{what} (median ms)"


def time_table(df: pd.DataFrame, reference: str | None) -> pd.DataFrame | None:
    """Median time by configuration x backend, and each backend's speed-up over ``reference`` where neither is noisy."""
    ok = ok_rows(df)
    if ok["time_median_ms"].isna().all() or ok["backend"].isna().all():
        return None
    keys = index_keys(df)
    times = ok.pivot_table(index=keys, columns="backend", values="time_median_ms", aggfunc="median", sort=False)
    noisy = ok.assign(noisy=ok["noisy"].fillna(False).astype(bool)).pivot_table(
        index=keys, columns="backend", values="noisy", aggfunc="max", sort=False
    )
    backends = [b for b in pd.unique(ok["backend"].dropna()) if b in times.columns]
    out = pd.DataFrame(index=times.index)
    for b in backends:
        out[f"{b} ms"] = times[b].map(text) + noisy[b].map(lambda v: " (noisy)" if v is True else "")
    if reference in times.columns:
        for b in (b for b in backends if b != reference):
            ratio = times[reference] / times[b]
            either = noisy[reference].fillna(False).astype(bool) | noisy[b].fillna(False).astype(bool)
            out[f"{b} speed-up"] = [
                "" if pd.isna(r) else NOISY if e else f"{r:.2f}x" for r, e in zip(ratio, either, strict=True)
            ]
    if len(backends) > 1:
        out["fastest first"] = [ranking(times.loc[i], noisy.loc[i]) for i in times.index]
    out = out.reset_index()
    return tidy(out, keys, [c for c in out.columns if c not in keys], df)


def ranking(times: pd.Series, noisy: pd.Series) -> str:
    """Backends by median time, fastest first (``jax < torch < numpy``); a noisy time is marked ``~``."""
    ranked = times.dropna().sort_values(kind="stable")
    flagged = {b for b, v in noisy.items() if not pd.isna(v) and bool(v)}
    return " < ".join(f"{b}{'~' if b in flagged else ''}" for b in ranked.index)


def phase_table(df: pd.DataFrame) -> pd.DataFrame | None:
    """Training: a step's forward, data backward and weight backward (median ms) by configuration and backend."""
    ok = ok_rows(df)
    cols = [c for c in PHASE_TIMES if ok[c].notna().any()]
    if not cols:
        return None
    keys = [*index_keys(df), "backend"]
    out = ok[[*keys, "time_median_ms", *cols]].copy()
    for c in ["time_median_ms", *cols]:
        out[c] = out[c].map(text)
    return tidy(out.rename(columns={"time_median_ms": "step_ms"}), keys, ["step_ms", *cols], df)


def shape_table(df: pd.DataFrame) -> pd.DataFrame | None:
    """Each configuration's shapes and whether they match the formulas, on as few keys as determine them."""
    ok = ok_rows(df)
    shapes = [c for c in SHAPES if ok[c].notna().any()]
    if ok.empty or not shapes:
        return None
    keys = [*index_keys(df), *(["backend"] if df["backend"].nunique() > 1 else [])]
    cells = ok[[*keys, *shapes]]
    return tidy(cells.assign(**{c: cells[c].map(text) for c in shapes}), keys, shapes, df)


def parity_table(df: pd.DataFrame, error: str = "max_abs_err_vs_ref", check: str = "parity_ok") -> pd.DataFrame | None:
    """Largest |backend - float64 reference| by configuration x backend; FAIL marks ``check`` false.

    The forward's by default; training's gradients with ``grad_max_abs_err_vs_ref`` and ``grad_parity_ok``.
    """
    ok = ok_rows(df)
    if ok.empty or error not in ok or ok[error].isna().all():
        return None
    cell = ok[error].map(lambda v: "" if pd.isna(v) else f"{v:.2g}")
    cell += ok[check].map(lambda v: " FAIL" if v is False else "")
    keys = index_keys(df)
    cells = ok.assign(_cell=cell)
    pivot = cells.pivot_table(index=keys, columns="backend", values="_cell", aggfunc="first", sort=False)
    out = pivot.reset_index().rename_axis(columns=None).fillna("")
    return tidy(out, keys, [c for c in out.columns if c not in keys], df)


def stats_table(df: pd.DataFrame, reference: str | None) -> pd.DataFrame | None:
    """Whole-sequence statistics per configuration (the reference backend's row where there is one)."""
    ok = ok_rows(df)
    stats = [c for c in schema.of_kind(schema.STATISTIC) if c in ok and ok[c].notna().any()]
    if not stats:
        return None
    keys = index_keys(df)
    if reference is not None:  # statistics agree across backends to the parity tolerance; prefer the reference's
        ok = ok.assign(_ref=ok["backend"] != reference).sort_values("_ref", kind="stable")
    first = ok.drop_duplicates(keys)[[*keys, *stats]]
    return tidy(first.assign(**{c: first[c].map(text) for c in stats}), keys, stats, df)


def layer_table(res: Results, reference: str | None) -> pd.DataFrame | None:
    """Per layer and direction (layer_stats.csv, rows without a gate): where depth and direction saturate."""
    parts = res.side(schema.LAYER_STATS)
    if parts is None or parts.empty:
        return None
    df = ok_rows(res.table)
    if reference is not None:
        df = df[df["backend"] == reference] if (df["backend"] == reference).any() else df
    keys = index_keys(res.table)
    join = [c for c in ("source", "job_num") if c in df and c in parts]
    parts = parts[parts["gate"].isna()] if parts["gate"].notna().any() and parts["gate"].isna().any() else parts
    merged = df[[*dict.fromkeys([*keys, *join])]].merge(parts, on=join).drop_duplicates([*keys, "layer", "direction"])
    stats = [c for c in ("h_saturation_frac", "h_dead_frac", "h_norm_growth", "gate_saturation_frac")
             if merged[c].notna().any()]  # fmt: skip
    out = merged[[*keys, "layer", "direction", "gate", *stats]]
    out = out[[c for c in out.columns if c not in ("gate",) or out[c].notna().any()]]
    cells = out.map(text)
    return cells if cells.empty else order_rows(cells.assign(layer=out["layer"]), [*keys, "layer"], res.table)


def failures(df: pd.DataFrame) -> pd.DataFrame | None:
    bad = df[~(df["status"] == "ok").fillna(False).astype(bool)]
    if bad.empty:
        return None
    shown = list(dict.fromkeys([*index_keys(df), "backend", "job_num", "status", "error"]))
    return order_rows(bad[shown].drop_duplicates(), index_keys(df), df).map(text)


def sections(res: Results, reference: str | None) -> dict[str, pd.DataFrame]:
    """Every section the data supports, as text cells, in one row order."""
    df = res.table
    title = time_title(ok_rows(df) if not ok_rows(df).empty else df)
    if reference is not None and df["backend"].nunique() > 1:
        title += f" and speed-up vs {reference}"
    made: dict[str, Callable[[], pd.DataFrame | None]] = {
        title: lambda: time_table(df, reference),
        "Training step by phase (median ms)": lambda: phase_table(df),
        "Shapes": lambda: shape_table(df),
        "Parity: max |backend - float64 reference|": lambda: parity_table(df),
        "Gradient parity: max |backend - float64 reference| of the gradients": lambda: parity_table(
            df, "grad_max_abs_err_vs_ref", "grad_parity_ok"
        ),
        "Hidden-state statistics": lambda: stats_table(df, reference),
        "Per layer and direction (layer_stats.csv)": lambda: layer_table(res, reference),
        "Failed jobs": lambda: failures(df),
    }
    built = {t: make() for t, make in made.items()}
    return {t: v.map(str) for t, v in built.items() if v is not None and not v.empty}


def markdown(t: pd.DataFrame) -> str:
    """A pipe table (pandas' to_markdown needs tabulate, which rnnexp does not depend on); every cell escaped."""
    line = lambda cells: "| " + " | ".join(cells) + " |"  # noqa: E731
    rows = [[markdown_cell(c) for c in row] for row in [list(t.columns), *t.values.tolist()]]
    return "\n".join([line(rows[0]), line(["---"] * len(t.columns)), *map(line, rows[1:])])


def terminal_table(t: pd.DataFrame, limit: int | None = None) -> str:
    """A table for the terminal: every cell and column name one inert line.

    Past ``limit`` rows, the rows holding a failure (FAIL, an error) and then the first in order, and a count.
    """
    shown = t
    if limit is not None and len(t) > limit:
        failing = t.apply(lambda row: any(str(v).endswith("FAIL") for v in row), axis=1)
        if "status" in t:
            failing |= t["status"] != "ok"
        keep = [*t.index[failing], *t.index[~failing]][:limit]
        shown = t.loc[t.index.isin(keep)]
    text = shown.map(terminal_text).rename(columns=terminal_text).to_string(index=False)
    if len(shown) < len(t):
        text += f"\n... {len(t) - len(shown)} more rows of {len(t)} (--all prints every row; report.md holds them)"
    return text


def write_markdown(
    tables: dict[str, pd.DataFrame], pngs: list[Path], sources: list[Path], out: Path, warnings: list[str] = ()
) -> Path:
    lines = ["# rnnexp report", "", "Inputs: " + ", ".join(markdown_cell(s) for s in sources), ""]
    lines += [f"**Warning:** {markdown_cell(w)}\n" for w in warnings]
    if any(t.endswith("vs " + REFERENCE) or " speed-up" in " ".join(v.columns) for t, v in tables.items()):
        lines += [f"Speed-ups are shown only where neither time is flagged noisy (`{NOISY}` otherwise).", ""]
    for title, t in tables.items():
        lines += [f"## {markdown_cell(title)}", "", markdown(t), ""]
    lines += [f"![{p.stem}]({p.name})\n" for p in pngs]
    return write_text_atomic(out / "report.md", "\n".join(lines))


def _label_safe(df: pd.DataFrame) -> pd.DataFrame:
    """Text cells as plot labels: controls shown escaped, ``$`` literal (matplotlib would parse mathtext)."""
    text = [c for c in df.columns if df[c].dtype == "string" or df[c].dtype == object]
    safe = {c: df[c].map(lambda v: v if pd.isna(v) else terminal_text(v).replace("$", r"\$")) for c in text}
    return df.assign(**safe) if safe else df


def _finite(df: pd.DataFrame, name: str, left_out: list[str]) -> pd.DataFrame:
    """Infinite floats as missing (an axis cannot hold them); each column's count added to ``left_out``."""
    floats = [c for c in df.columns if pd.api.types.is_float_dtype(df[c])]
    infinite = {c: np.isinf(df[c].to_numpy(dtype=float)) for c in floats}
    left_out += [f"{name} {c}: {int(m.sum())}" for c, m in infinite.items() if m.any()]
    return df.assign(**{c: df[c].mask(m) for c, m in infinite.items() if m.any()})


def plottable(res: Results) -> tuple[Results, list[str]]:
    """The tables as plots can draw and label them, and what they leave out (infinite values), per column."""
    left_out: list[str] = []
    table = _finite(_label_safe(res.table), schema.RESULTS, left_out)
    sides = {name: _finite(_label_safe(side), name, left_out) for name, side in res.sides.items()}
    return dataclasses.replace(res, table=table, sides=sides), left_out


def choose_reference(df: pd.DataFrame, asked: str | None) -> str | None:
    """The backend speed-ups are measured against; an asked-for one must have rows (else InputError)."""
    present = list(pd.unique(df["backend"].dropna()))
    if asked is None:
        return REFERENCE if REFERENCE in present else None
    if asked not in present:
        raise InputError(f"--reference {asked}: no rows ran on that backend (backends here: {', '.join(present)})")
    return asked


def default_out(first: Path) -> Path:
    """The input's own dir when rnnexp made it (a sweep, run or job dir), else the current dir."""
    folder = first if first.is_dir() else first.parent
    return folder if is_run_dir(folder) else Path.cwd()


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Print tables of one or more runs (time by configuration x backend with speed-ups, shapes, "
        "parity, statistics, failures) and write report.md and PNG plots. An interrupted sweep without a root "
        "results.csv is rebuilt from its job dirs' rows.",
    )
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="sweep dir, run dir or results CSV")
    parser.add_argument(
        "--out", type=Path, help="where report.md and the PNGs go (default: the first PATH's sweep or run dir, "
        "else the current dir)"
    )  # fmt: skip
    parser.add_argument(
        "--reference", help=f"backend speed-ups are measured against (default {REFERENCE}, when it has rows)"
    )
    parser.add_argument("--no-plots", action="store_true", help="write report.md and print tables only")
    parser.add_argument(
        "--all",
        action="store_true",
        help=f"print every row of every table (default: {SHOWN} rows each, failures first)",
    )
    return parser.parse_args(argv)


def history_plots(table: pd.DataFrame, folder: Path) -> list[Path]:
    """These configurations' timing series from the history store (rnnexp.review.history); none without a store."""
    from rnnexp.review import history

    return history.report_pngs(table, folder)


def _error(message, code: int) -> int:
    print(f"{PROG}: error: {terminal_text(message)}", file=sys.stderr)
    return code


def _busy_out(folder: Path) -> str | None:
    """Who is still writing the run or sweep dir ``folder`` lies in, if anyone: a report there would go stale."""
    root = coverage.sweep_root(folder) if folder.exists() else None
    return coverage.live_holder(root) if root is not None else None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    out = Printer()
    try:
        res = load_many(args.paths)
        reference = choose_reference(res.table, args.reference)
    except InputError as exc:
        return _error(exc, 2)
    folder = args.out or default_out(args.paths[0])
    holder = _busy_out(folder)
    if holder:  # its report would sit in the live dir next to the finished table, stale
        return _error(f"{folder} is still being written by {holder}: a report written into it now would go stale; "
                      "wait for it to finish, or give --out DIR for a report of the rows so far", 1)  # fmt: skip
    try:  # a dir that exists but cannot be written (/proc, read-only) fails here, not halfway
        folder.mkdir(parents=True, exist_ok=True)
        write_text_atomic(folder / ".rnnexp-report.probe", "").unlink()
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            return _error(f"--out {folder}: no space left on the device; nothing was written", 1)
        return _error(f"--out {folder}: {exc.strerror or exc} (give a dir for report.md and the plots)", 2)
    warned = [*res.busy, *res.missing, *res.notes]
    for line in warned:
        print(f"{PROG}: warning: {terminal_text(line)}", file=sys.stderr)
    tables = sections(res, reference)
    for title, t in tables.items():
        out.say(f"\n== {terminal_text(title)} ==\n{terminal_table(t, None if args.all else SHOWN)}")
    pngs: list[Path] = []
    try:
        if not args.no_plots:
            from rnnexp.review import plots  # matplotlib only when plotting

            drawable, left_out = plottable(res)
            if left_out:
                print(f"{PROG}: warning: plots leave out infinite values ({'; '.join(left_out)})", file=sys.stderr)
            pngs = plots.make_all(drawable, folder, reference)
            pngs += history_plots(res.table, folder)
        path = write_markdown(tables, pngs, args.paths, folder, warned)
        from rnnexp.review import html  # plotly only when writing the page

        page = html.write(res, args.paths, folder, pngs, plots=not args.no_plots)
    except OSError as exc:  # a full disk: every file is written whole or not at all (fileio.write_atomic)
        return _error(f"cannot write the report in {folder}: {exc.strerror or exc}; report.md and report.html "
                      "are whole or not written", 1)  # fmt: skip
    out.say(f"\nreport: {terminal_text(path)}" + "".join(f"\nplot: {terminal_text(p)}" for p in pngs))
    out.say(f"page: {terminal_text(page)}")
    out.close()
    return out.exit_code(PROG)


if __name__ == "__main__":
    sys.exit(main())
