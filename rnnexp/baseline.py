"""A sweep's deterministic columns, frozen as a baseline that later sweeps are compared with.

``python -m rnnexp.baseline SWEEP_DIR OUT.csv`` keeps each row's configuration and deterministic
columns (shapes, statistics, parity figures, status: see ``rnnexp.columns``), drops timings and
provenance, and writes the environment it was made in beside it (``OUT.env.json``).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import pandas as pd

from rnnexp import columns, results


def deterministic_view(table: pd.DataFrame) -> pd.DataFrame:
    """Configuration and deterministic columns only, in the table's column order."""
    keep = [c for c in table.columns if columns.kind(c) in (columns.CONFIG, columns.DETERMINISTIC)]
    return table[keep]


def environment(table: pd.DataFrame) -> dict:
    versions = {c: str(table[c].iloc[0]) for c in table.columns if c.endswith("_version") and len(table)}
    return {"machine": platform.machine(), "processor": platform.processor(), "rows": len(table), **versions}


def write_baseline(sweep_dir: Path, out: Path) -> pd.DataFrame:
    table = results.collect(sweep_dir)
    if table.empty:
        raise ValueError(f"{sweep_dir}: no job rows to make a baseline from")
    view = deterministic_view(table)
    results.write_csv_atomic(view, out)
    Path(f"{out.with_suffix('')}.env.json").write_text(json.dumps(environment(table), indent=2) + "\n")
    return view


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rnnexp.baseline", description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    try:
        view = write_baseline(args.sweep_dir, args.out)
    except (OSError, ValueError) as exc:
        print(f"rnnexp.baseline: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {len(view)} rows x {len(view.columns)} columns to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
