"""A run's deterministic columns, frozen as a baseline that later runs are compared with.

``python -m rnnexp.review.baseline SWEEP_DIR OUT.csv`` keeps each row's configuration keys and the
columns ``compare`` checks exactly or within a tolerance (shapes, statistics, parity, status: the
``rnnexp.schema`` rules exact, float, error), drops timings and provenance, and writes the
environment it was made in beside it (``OUT.env.json``). The per-layer statistics, when the run
has them, go beside it too (``OUT.layer_stats.csv``).
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

import pandas as pd

from rnnexp import schema
from rnnexp.fileio import write_csv_atomic, write_json_atomic
from rnnexp.review.escape import formula_like, terminal_text
from rnnexp.review.inputs import InputError, load

KEPT_RULES = (schema.KEY, schema.EXACT, schema.FLOAT, schema.ERROR)


def deterministic_view(table: pd.DataFrame) -> pd.DataFrame:
    """Configuration keys and deterministic columns only, in declared order; job_num kept to join side tables."""
    keep = [*schema.with_rule(*KEPT_RULES), "job_num"]
    return table[[c for c in schema.names() if c in keep and c in table]]


def environment(table: pd.DataFrame) -> dict:
    settings = {c: str(table[c].dropna().iloc[0]) for c in schema.with_rule(schema.SETTING)
                if c in table and table[c].notna().any()}  # fmt: skip
    return {"machine": platform.machine(), "processor": platform.processor(), "rows": len(table), **settings}


def side_path(out: Path, table: str) -> Path:
    return out.with_name(f"{out.stem}.{table}")


def refuse_formulas(df: pd.DataFrame, where: str) -> None:
    """InputError for a text cell a spreadsheet would run (``=cmd|' /C calc'!A0``).

    A baseline is rnnexp's own table, read back and compared exactly, so it cannot defuse such a
    cell with a leading quote as a table for people would (``escape.spreadsheet_safe``): no real
    run writes one in the columns it keeps (enums, shapes, status), so it is refused.
    """
    for name in df.columns:
        hits = df[name].map(formula_like)
        if hits.any():
            value = df.loc[hits.to_numpy(), name].iloc[0]
            raise InputError(f"{where}: column {name} holds {value!r}, which a spreadsheet would run as a formula; "
                             "no run writes such a value, so no baseline is written")  # fmt: skip


def write_baseline(source: Path, out: Path) -> pd.DataFrame:
    res = load(source)
    view = deterministic_view(res.table)
    layers = res.side(schema.LAYER_STATS)
    refuse_formulas(view, str(source))
    if layers is not None:
        refuse_formulas(layers, f"{source} ({schema.LAYER_STATS})")
    write_csv_atomic(view, out)
    write_json_atomic(out.with_suffix(".env.json"), environment(res.table))
    if layers is not None:
        write_csv_atomic(layers, side_path(out, schema.LAYER_STATS))
    return view


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rnnexp.review.baseline", description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, metavar="SWEEP_DIR", help="sweep dir, run dir or results.csv")
    parser.add_argument("out", type=Path, metavar="OUT.csv")
    args = parser.parse_args(argv)
    try:
        view = write_baseline(args.source, args.out)
    except (InputError, OSError) as exc:
        print(f"rnnexp.review.baseline: error: {terminal_text(exc)}", file=sys.stderr)
        return 2
    print(f"wrote {len(view)} rows x {len(view.columns)} columns to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
