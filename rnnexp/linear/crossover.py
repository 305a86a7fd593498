"""Where a parallel scan starts to beat the loop: ``python -m rnnexp.linear.crossover RESULTS.csv [--out DIR]``.

Reads a sweep's table (the ``scan_crossover`` preset's, or any with ``scan`` and ``timesteps`` varying),
prints per backend and parallel scan the crossover length (the smallest T from which that scan's median
time is below the sequential loop's at every longer T measured; "never" otherwise), and with ``--out``
draws time per step against T per scan and backend (``crossover.png``), the crossovers marked.
Reads CSVs only: imports neither torch nor Hydra.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import pandas as pd

PARALLEL = ("associative", "chunked")


def time_per_step(table: pd.DataFrame) -> pd.DataFrame:
    """(backend, scan, timesteps) -> median microseconds per step, over the ok rows."""
    ok = table[table["status"] == "ok"]
    per = ok.assign(us_per_step=1e3 * ok["time_median_ms"] / ok["timesteps"])
    return per.groupby(["backend", "scan", "timesteps"], as_index=False)["us_per_step"].median()


def crossovers(table: pd.DataFrame) -> pd.DataFrame:
    """One row per backend and parallel scan: crossover_timesteps (NaN: never) and the speed-up at the longest T."""
    per = time_per_step(table)
    rows = []
    for backend, part in per.groupby("backend"):
        seq = part[part["scan"] == "sequential"].set_index("timesteps")["us_per_step"]
        for scan in PARALLEL:
            par = part[part["scan"] == scan].set_index("timesteps")["us_per_step"]
            common = sorted(set(seq.index) & set(par.index))
            if not common:
                continue
            wins = [par[t] < seq[t] for t in common]
            start = next((i for i in range(len(common)) if all(wins[i:])), None)
            rows.append(
                {
                    "backend": backend,
                    "scan": scan,
                    "crossover_timesteps": common[start] if start is not None else math.nan,
                    "longest_timesteps": common[-1],
                    "speedup_at_longest": seq[common[-1]] / par[common[-1]],
                }
            )
    columns = ["backend", "scan", "crossover_timesteps", "longest_timesteps", "speedup_at_longest"]
    return pd.DataFrame(rows, columns=columns)


def plot(table: pd.DataFrame, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rnnexp.fileio import write_atomic

    per, cross = time_per_step(table), crossovers(table)
    backends = sorted(per["backend"].unique())
    fig, axes = plt.subplots(1, len(backends), figsize=(5 * len(backends), 4), squeeze=False, sharey=True)
    for ax, backend in zip(axes[0], backends, strict=True):
        part = per[per["backend"] == backend]
        for scan, line in part.groupby("scan"):
            ax.plot(line["timesteps"], line["us_per_step"], marker="o", label=scan)
        found = cross[(cross["backend"] == backend) & cross["crossover_timesteps"].notna()]
        for steps, group in found.groupby("crossover_timesteps"):  # one mark per length, every scan that wins there
            ax.axvline(steps, linestyle=":", color="grey")
            label = f"{', '.join(group['scan'])} wins from T={int(steps)}"
            ax.annotate(label, (steps, ax.get_ylim()[1]), fontsize=7, va="top", rotation=90)
        never = cross[(cross["backend"] == backend) & cross["crossover_timesteps"].isna()]["scan"].tolist()
        title = backend + (f" (never: {', '.join(never)})" if never else "")
        ax.set(xscale="log", yscale="log", xlabel="timesteps T", title=title)
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel("median time per step (us)")
    fig.tight_layout()
    write_atomic(path, lambda fh: fig.savefig(fh, format="png", dpi=110), binary=True)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rnnexp.linear.crossover", description=__doc__.splitlines()[0])
    parser.add_argument("table", type=Path, help="a results.csv with scan and timesteps varying")
    parser.add_argument("--out", type=Path, help="a dir for crossover.png")
    args = parser.parse_args(argv)
    try:
        table = pd.read_csv(args.table)
        missing = {"backend", "scan", "timesteps", "time_median_ms", "status"} - set(table.columns)
        if missing:
            raise ValueError(f"lacks the columns {sorted(missing)}")
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        print(f"{parser.prog}: error: {args.table}: {exc}", file=sys.stderr)
        return 2
    print(crossovers(table).to_string(index=False))
    if args.out:
        print(f"plot: {plot(table, args.out / 'crossover.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
