"""``rnnexp report PATH...``: the tables and plots a person reviews a sweep with.

Reads sweep dirs, run dirs or results.csv files (a partial sweep's table is rebuilt from its job
rows), prints pivots chosen from what varies, and writes ``report.md`` and PNG plots.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import pandas as pd

from rnnexp import columns, results
from rnnexp.results import STEPS_FILE

PROG = "rnnexp report"
REFERENCE = "numpy"  # the backend that speed-ups are measured against
SHAPES = ["output_shape", "h_n_shape", "c_n_shape"]
PART = re.compile(r"_(l\d+|forward|reverse|[a-z])$")  # per layer, direction or gate: too wide for the summary


class InputError(Exception):
    """A path that holds no usable results table; the message is one line naming it."""


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise InputError(f"{path}: empty file, not a results table") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise InputError(f"{path}: malformed CSV ({reason})") from None


def read_results(path: Path | str) -> pd.DataFrame:
    """The rows under ``path``: a results.csv, a dir holding one, or a sweep dir with job rows only."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or directory")
    if path.is_dir():
        root = path / results.ROW_FILE
        df = _read_csv(root) if root.is_file() else results.collect(path)
        if df.empty and not root.is_file():
            raise InputError(f"{path}: no {results.ROW_FILE} in it or in its job dirs")
    else:
        df = _read_csv(path)
    if not columns.of_kind(df.columns, columns.CONFIG):
        raise InputError(f"{path}: not a results table (no configuration columns such as cell, backend)")
    if df.empty:
        raise InputError(f"{path}: results table has no rows")
    return df


def read_steps(path: Path | str) -> pd.DataFrame | None:
    """steps.csv beside the results (a dir's own, else its job dirs'), or None."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    if (folder / STEPS_FILE).is_file():
        return pd.read_csv(folder / STEPS_FILE)
    if not path.is_dir():
        return None
    steps = results.collect(folder, STEPS_FILE)
    return None if steps.empty else steps


def source_names(paths: list[Path]) -> list[str]:
    """Short names for inputs in tables and legends: the sweep or run dir's name, or the whole path if those clash."""
    short = [p.name if p.is_dir() else p.parent.name or p.name for p in paths]
    return short if len(set(short)) == len(short) else [str(p) for p in paths]


def load(paths: list[Path]) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Every input's rows in one table; with several inputs a ``source`` column says which input each came from."""
    tables, steps, names = [], [], source_names(paths)
    for path, name in zip(paths, names, strict=True):
        df, st = read_results(path), read_steps(path)
        df.insert(0, "source", name)
        tables.append(df)
        if st is not None and "job_num" in st:
            steps.append(st.assign(source=name))
    table = pd.concat(tables, ignore_index=True)
    if len(paths) == 1:
        table = table.drop(columns="source")
    return table, (pd.concat(steps, ignore_index=True) if steps else None)


def varying(df: pd.DataFrame) -> list[str]:
    """Configuration columns that differ between rows (``cell`` always, so a pivot has an index)."""
    cfg = [c for c in columns.CONFIG_COLUMNS if c in df and (c == "cell" or df[c].nunique(dropna=False) > 1)]
    if "source" in df and df.duplicated(cfg).any():
        cfg.append("source")  # the same configuration from several inputs: keep them apart
    return cfg


def _index(df: pd.DataFrame) -> list[str]:
    """A pivot's rows: the configuration but backend; else one constant config column, so a pivot always has rows."""
    cols = [c for c in varying(df) if c != "backend"]
    return cols or [c for c in [*columns.CONFIG_COLUMNS, "rows"] if c in df and c != "backend"][:1]


def _fmt(value) -> str:
    if isinstance(value, float):
        return "" if pd.isna(value) else f"{value:.4g}"
    return str(value)


def _ok(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["status"] == "ok"] if "status" in df else df


def time_table(df: pd.DataFrame, reference: str = REFERENCE) -> pd.DataFrame | None:
    """Median forward time (ms) by configuration x backend, and each backend's speed-up over the reference."""
    ok = _ok(df)
    if "time_median_ms" not in ok or ok["time_median_ms"].isna().all() or "backend" not in ok:
        return None
    pivot = ok.pivot_table(index=_index(df), columns="backend", values="time_median_ms", aggfunc="median", sort=False)
    out = pivot.map(_fmt).rename(columns=lambda b: f"{b} ms")
    if reference in pivot:
        for backend in [b for b in pivot.columns if b != reference]:
            out[f"{backend} speed-up"] = (pivot[reference] / pivot[backend]).map(
                lambda v: f"{v:.2f}x" if v == v else ""
            )
    return out.reset_index().rename_axis(columns=None)


def shape_table(df: pd.DataFrame) -> pd.DataFrame | None:
    """Each configuration's shapes, whether they match the formulas, and the backends that produced them."""
    ok, shapes = _ok(df), [c for c in SHAPES if c in df and df[c].notna().any()]
    if not shapes or ok.empty:
        return None
    keys = _index(df) + shapes
    agg = {"backend": lambda s: ",".join(sorted(set(map(str, s))))} if "backend" in ok else {}
    if "shape_ok" in ok:
        agg["shape_ok"] = "all"
    return ok.fillna({c: "" for c in shapes}).groupby(keys, sort=False).agg(agg).reset_index()


def parity_table(df: pd.DataFrame) -> pd.DataFrame | None:
    """Largest |backend - float64 reference| by configuration x backend; FAIL marks parity_ok false."""
    ok = _ok(df)
    if "max_abs_err_vs_ref" not in ok or "backend" not in ok or ok.empty:
        return None
    ok = ok.assign(_cell=ok["max_abs_err_vs_ref"].map(lambda v: f"{v:.2g}"))
    if "parity_ok" in ok:
        ok["_cell"] += ok["parity_ok"].map(lambda v: " FAIL" if str(v) == "False" else "")
    pivot = ok.pivot_table(index=_index(df), columns="backend", values="_cell", aggfunc="first", sort=False)
    return pivot.reset_index().rename_axis(columns=None)


def stats_table(df: pd.DataFrame, reference: str = REFERENCE) -> pd.DataFrame | None:
    """Whole-sequence hidden-state statistics per configuration (the reference backend's row where there is one)."""
    ok = _ok(df)
    stats = [c for c in columns.of_kind(ok.columns, columns.DETERMINISTIC) if columns.is_statistic(c)]
    stats = [c for c in stats if not PART.search(c) and ok[c].notna().any()]
    if not stats:
        return None
    if "backend" in ok:  # statistics agree across backends; prefer the reference's
        ok = ok.assign(_ref=ok["backend"] != reference).sort_values("_ref", kind="stable")
    return ok.groupby(_index(df), sort=False)[stats].first().map(_fmt).reset_index()


def failures(df: pd.DataFrame) -> pd.DataFrame | None:
    if "status" not in df or (df["status"] == "ok").all():
        return None
    bad = df[df["status"] != "ok"]
    shown = dict.fromkeys(c for c in [*_index(df), "backend", "status", "error"] if c in bad)
    return bad[list(shown)].drop_duplicates()


SECTIONS = {
    "Forward time (median ms) and speed-up vs the reference backend": time_table,
    "Shapes": shape_table,
    "Parity: max |backend - float64 reference|": parity_table,
    "Hidden-state statistics": stats_table,
    "Failed jobs": failures,
}


def tables(df: pd.DataFrame, reference: str = REFERENCE) -> dict[str, pd.DataFrame]:
    """Every section the data supports, as text cells."""
    if not _index(df):  # backend is the only configuration column: pivot on a constant
        df = df.assign(rows="all")
    with_ref = (time_table, stats_table)
    built = {title: make(df, reference) if make in with_ref else make(df) for title, make in SECTIONS.items()}
    return {title: t.map(_fmt) for title, t in built.items() if t is not None and not t.empty}


def markdown(t: pd.DataFrame) -> str:
    """A pipe table (pandas' to_markdown needs tabulate, which rnnexp does not depend on)."""
    rows = [list(map(str, t.columns)), ["---"] * len(t.columns), *t.astype(str).values.tolist()]
    return "\n".join("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows)


def write_markdown(sections: dict[str, pd.DataFrame], pngs: list[Path], sources: list[Path], out: Path) -> Path:
    lines = ["# rnnexp report", "", "Inputs: " + ", ".join(f"`{s}`" for s in sources), ""]
    for title, t in sections.items():
        lines += [f"## {title}", "", markdown(t), ""]
    lines += [f"![{p.stem}]({p.name})\n" for p in pngs]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Print pivot tables of one or more result tables (time by configuration x backend with "
        "speed-ups, shapes, parity, statistics) and write report.md and PNG plots. An interrupted sweep "
        "without a root results.csv is rebuilt from its job dirs' rows.",
    )
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="sweep dir, run dir or results.csv")
    parser.add_argument(
        "--out", type=Path, help="where report.md and the PNGs go (default: the first PATH if a dir, else its dir)"
    )
    parser.add_argument(
        "--reference", default=REFERENCE, help=f"backend that speed-ups are measured against (default {REFERENCE})"
    )
    parser.add_argument("--no-plots", action="store_true", help="write report.md and print tables only")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        df, steps = load(args.paths)
    except InputError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    first = args.paths[0]
    out = args.out or (first if first.is_dir() else first.parent)
    out.mkdir(parents=True, exist_ok=True)
    sections = tables(df, args.reference)
    for title, t in sections.items():
        print(f"\n== {title} ==\n{t.to_string(index=False)}")
    pngs = []
    if not args.no_plots:
        from rnnexp import plots  # matplotlib only when plotting

        pngs = plots.make_all(df, steps, out)
    path = write_markdown(sections, pngs, args.paths, out)
    print(f"\nreport: {path}" + "".join(f"\nplot: {p}" for p in pngs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
