"""``rnnexp history``: the sweeps kept in the history store, imports into it, and steps in their timings.

    rnnexp history [--store PATH]                       one line per stored run or sweep
    rnnexp history add DIR... [--store PATH]            import run or sweep dirs made elsewhere
    rnnexp history --changes [--csv PATH] [--config KEY=VALUE ...] [--metric COL] [--ratio R]

``--changes`` builds each configuration's series on each machine from the stored samples (oldest
sweep first) and finds its steps (``rnnexp.review.changes``): one row per step, with the
configuration keys, ``machine``, the ``sweep_id`` where it changed, ``ratio``, ``ci_low`` and
``ci_high``. Exit status 1 when the newest sweep holds a slowdown, so CI can gate on it. Imports
neither torch nor Hydra.
"""

from __future__ import annotations

import argparse
import difflib
import math
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from rnnexp import schema, store
from rnnexp.fileio import write_csv_atomic
from rnnexp.review import changes, evidence
from rnnexp.review.compare import RATIO
from rnnexp.review.output import Printer

PROG = "rnnexp history"
SERIES = ["machine"]  # besides the configuration keys, what a series is split by
STEP_COLUMNS = ["metric", "sweep_id", "started_utc", "git_commit", "change", "ratio", "ci_low", "ci_high",
                "n_blocks_before", "n_blocks_after"]  # fmt: skip


class Refused(Exception):
    """Bad input: one line, exit 2, nothing written."""


def _error(text: str) -> None:
    print(f"rnnexp: error: {' '.join(str(text).split())}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- the series


def timed_metrics() -> list[str]:
    return schema.with_rule(schema.TIMED)


def per_call(samples: pd.DataFrame, phases: tuple[str, ...]) -> pd.DataFrame:
    """Per-call seconds per block of each (sweep_id, job_num), from the first of ``phases`` that job has."""
    if samples is None or samples.empty:
        return pd.DataFrame(columns=["sweep_id", "job_num", "seconds"])
    s = samples.assign(rank=samples["phase"].map({p: i for i, p in enumerate(phases)}))
    s = s[s["rank"] == s.groupby(["sweep_id", "job_num"])["rank"].transform("min")]
    return s.assign(seconds=s["block_time_s"] / s["block_size"])[["sweep_id", "job_num", "seconds"]]


def series(rows: pd.DataFrame, samples: pd.DataFrame, phases: tuple[str, ...]):
    """Yield (configuration and machine, [(sweep_id, per-call seconds, its row)], oldest first) for every series.

    Works on a narrow frame and plain arrays: a pandas group per sweep would cost ~2 ms each.
    """
    keys = [k for k in schema.config_keys() if k in rows.columns] + SERIES
    info = ["started_utc", "git_commit"]
    ok = rows.loc[rows["status"] == "ok", [*keys, "sweep_id", "job_num", *(c for c in info if c in rows)]]
    calls = per_call(samples, phases)
    by_job = {k: g.to_numpy(float) for k, g in calls.groupby(["sweep_id", "job_num"], sort=False)["seconds"]}
    sweep_ids, job_nums = ok["sweep_id"].to_numpy(), ok["job_num"].to_numpy()
    details = ok[[c for c in info if c in ok]].to_dict("records")
    for values, positions in ok.groupby(keys, sort=False, dropna=False).indices.items():
        values = values if isinstance(values, tuple) else (values,)
        per_sweep: dict[int, list[np.ndarray]] = {}
        first: dict[int, dict] = {}
        for i in positions:  # rows come oldest sweep first
            part = by_job.get((sweep_ids[i], job_nums[i]))
            if part is not None and len(part):
                per_sweep.setdefault(int(sweep_ids[i]), []).append(part)
                first.setdefault(int(sweep_ids[i]), details[i])
        points = [(sid, np.concatenate(parts), first[sid]) for sid, parts in per_sweep.items()]
        if len(points) > 1:
            yield dict(zip(keys, values, strict=True)), points


def find(rows: pd.DataFrame, samples: pd.DataFrame, metric: str, ratio: float) -> pd.DataFrame:
    """One row per step of every series: configuration keys, machine, and the step's sweep, ratio and interval."""
    col = schema.column(metric)
    out = []
    for config, points in series(rows, samples, col.phases):
        for step in changes.find_steps([p[1] for p in points], ratio):
            sweep_id, _, row = points[step.index]
            out.append({
                **config, "metric": metric, "sweep_id": sweep_id, "started_utc": row["started_utc"],
                "git_commit": row.get("git_commit"),
                "change": "slower" if step.verdict == evidence.REGRESSION else "faster",
                "ratio": step.ratio, "ci_low": step.low, "ci_high": step.high,
                "n_blocks_before": step.n_before, "n_blocks_after": step.n_after,
            })  # fmt: skip
    columns = [*(k for k in schema.config_keys() if k in rows.columns), *SERIES, *STEP_COLUMNS]
    return pd.DataFrame(out, columns=columns)


def series_for(rows: pd.DataFrame, samples: pd.DataFrame, metric: str = "time_median_ms", ratio: float = RATIO):
    """Long form, one row per configuration, machine and sweep: the sweep's per-call median and quartiles (ms),
    its blocks, and the step found there (``change``: slower, faster or empty; ``ratio``)."""
    out = []
    for config, points in series(rows, samples, schema.column(metric).phases):
        steps = {s.index: s for s in changes.find_steps([p[1] for p in points], ratio)}
        for i, (sweep_id, seconds, row) in enumerate(points):
            q1, median, q3 = np.percentile(seconds * 1e3, [25, 50, 75])
            step = steps.get(i)
            change = "" if step is None else ("slower" if step.verdict == evidence.REGRESSION else "faster")
            out.append({**config, "sweep_id": sweep_id, "started_utc": row["started_utc"], "median_ms": median,
                        "q1_ms": q1, "q3_ms": q3, "n_blocks": len(seconds), "change": change,
                        "ratio": step.ratio if step else math.nan})  # fmt: skip
    return pd.DataFrame(out)


def plot_png(points: pd.DataFrame, out: Path, name: str = "history.png", most: int = 12) -> Path | None:
    """Each configuration's series (median per-call time per sweep, quartiles as bars), its steps marked."""
    from rnnexp.review import draw

    keys = [k for k in schema.config_keys() if k in points and points[k].nunique(dropna=False) > 1] + SERIES
    groups = list(points.groupby(keys, sort=False, dropna=False))[:most] if len(points) else []
    if not groups:
        return None
    fig, axes = draw.panels(len(groups))
    for ax, (values, g) in zip(axes, groups, strict=True):
        x = np.arange(len(g))
        ax.errorbar(x, g["median_ms"], yerr=[g["median_ms"] - g["q1_ms"], g["q3_ms"] - g["median_ms"]], fmt="o-",
                    capsize=3)  # fmt: skip
        for i, (_, step) in enumerate(g.iterrows()):
            if step["change"]:
                ax.axvline(i - 0.5, color="red" if step["change"] == "slower" else "green", ls="--")
                ax.annotate(f"x{step['ratio']:.2f}", (i - 0.45, step["median_ms"]), fontsize="small")
        ax.set_xticks(x, [str(v) for v in g["sweep_id"]], fontsize="small")
        ax.set_xlabel("sweep_id (oldest first)")
        ax.set_ylabel("per-call time (ms)")
        ax.set_title(", ".join(f"{k}={v}" for k, v in zip(keys, values, strict=True)), fontsize="small")
    return draw.finish(fig, axes, draw.Styles(), out, name, "Timing history: each sweep's median, steps marked")


def report_pngs(table: pd.DataFrame, out: Path, where: Path | str | None = None) -> list[Path]:
    """``rnnexp report``'s hook: the series of ``table``'s configurations on its machine from the history store,
    when it holds more than one sweep of them; nothing (and no error) without a store."""
    path = store.resolve(where)
    ok = table[table["status"] == "ok"] if "status" in table else table.iloc[0:0]
    keys = [k for k in [*schema.config_keys(), "cpu_model"] if k in ok.columns]
    if not path.is_file() or ok.empty or not keys:
        return []
    try:
        like = schema.coerce(ok[keys]).drop_duplicates().reset_index(drop=True)
        wanted = [*schema.of_kind(schema.CONFIG), "status", "job_num", "git_commit"]
        rows, samples = store.select(path, like=like, phases=schema.column("time_median_ms").phases, columns=wanted)
    except store.StoreError as exc:
        print(f"rnnexp: warning: report: no timing history ({exc})", file=sys.stderr)
        return []
    png = plot_png(series_for(rows, samples), out)
    return [png] if png is not None else []


# --------------------------------------------------------------------------- the command line


def parse_args(argv: list[str]) -> argparse.Namespace:
    adding = bool(argv) and argv[0] == "add"
    parser = argparse.ArgumentParser(
        prog=f"{PROG} add" if adding else PROG,
        description="Import run or sweep dirs into the history store (each once)."
        if adding
        else "List the runs and sweeps in the history store, or (--changes) find the steps in each "
        "configuration's timing series per machine. Every finished run and sweep is added to the store "
        "(config key store, default outputs/history.duckdb; store=null adds nothing).",
    )
    parser.add_argument("--store", type=Path, help=f"the store (default {store.DEFAULT_STORE}, from here)")
    if adding:
        parser.add_argument("dirs", nargs="+", type=Path, metavar="DIR", help="run or sweep dirs")
        return parser.parse_args(argv[1:])
    parser.add_argument("--changes", action="store_true", help="find steps in each configuration's timing series")
    parser.add_argument("--csv", type=Path, help="with --changes: write the steps to this CSV")
    parser.add_argument("--config", nargs="+", default=[], metavar="KEY=VALUE", help="only these configurations")
    parser.add_argument("--metric", default="time_median_ms", help=f"the timing judged ({', '.join(timed_metrics())})")
    parser.add_argument("--ratio", type=float, default=RATIO, help=f"smallest step that counts (default {RATIO})")
    return parser.parse_args(argv)


def config_filter(pairs: list[str]) -> dict[str, str]:
    """``KEY=VALUE`` pairs as a filter; Refused for a malformed pair or a key that is not a configuration column."""
    known = schema.of_kind(schema.CONFIG)
    out = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or not key:
            raise Refused(f"--config {pair}: expected KEY=VALUE, e.g. hidden_size=64")
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"did you mean {close[0]}?" if close else f"keys: {', '.join(known)}"
            raise Refused(f"--config {pair}: unknown key ({hint})")
        out[key] = value
    return out


def check_args(args: argparse.Namespace) -> None:
    if args.metric not in timed_metrics():
        allowed = ", ".join(timed_metrics())
        raise Refused(f"--metric {args.metric}: not a timing judged from samples (allowed: {allowed})")
    if not (args.ratio >= 1 and math.isfinite(args.ratio)):
        raise Refused(f"--ratio {args.ratio}: must be a factor >= 1, e.g. 1.2")
    if args.csv is not None and (args.csv.is_dir() or not os.access(args.csv.parent.resolve(), os.W_OK)):
        raise Refused(f"--csv {args.csv}: not a writable file path (its dir must exist)")
    if (args.csv is not None or args.config or args.metric != "time_median_ms" or args.ratio != RATIO) and not (
        args.changes
    ):
        raise Refused("--csv, --config, --metric and --ratio go with --changes")


def list_sweeps(path: Path | None, out: Printer) -> int:
    table = store.sweeps(path)
    if table.empty:
        out.say(f"(no sweeps in {store.resolve(path)})")
        return 0
    commit = table["git_commit"].fillna("").str[:10] + np.where(table["git_dirty"].fillna(False), "-dirty", "")
    rows = table["n_rows"].astype(str) + np.where(table["n_missing"] > 0, " of " + table["n_jobs"].astype(str), "")
    shown = pd.DataFrame({
        "sweep_id": table["sweep_id"], "started_utc": table["started_utc"].str.replace("T", " ").str[:19],
        "commit": commit, "machine": table["machine"], "rows": rows, "command": table["command"],
    })  # fmt: skip
    out.say(shown.to_string(index=False))
    return 0


def add(paths: list[Path], where: Path | None, out: Printer) -> int:
    """Import each dir in its own transaction; every dir is read (and refused) before anything is written."""
    from rnnexp.sweep_record import RecordError, read

    store.check_target(store.resolve(where))
    try:
        records = [read(p) for p in paths]
    except RecordError as exc:
        raise Refused(f"history add {exc}; nothing was added") from None
    code = 0
    for record in records:
        try:
            added = store.append(where, record)
        except store.Duplicate as exc:
            _error(f"history add {exc}")
            code = 1
            continue
        verb = "replaced the unfinished" if added.replaced else "added"
        out.say(f"{verb} sweep {added.sweep_id}: {record.meta.sweep_dir} ({added.n_rows} rows)")
    return code


def show_changes(args: argparse.Namespace, out: Printer) -> int:
    equals = config_filter(args.config)
    wanted = [*schema.of_kind(schema.CONFIG), "status", "job_num", "git_commit"]
    rows, samples = store.select(args.store, equals, phases=schema.column(args.metric).phases, columns=wanted)
    if rows.empty:
        out.say("(no stored rows" + (f" with {' '.join(args.config)})" if args.config else ")"))
        return 0
    found = find(rows, samples, args.metric, args.ratio)
    if args.csv is not None:
        write_csv_atomic(found, args.csv)
    newest = int(rows["sweep_id"].iloc[-1])  # rows come oldest sweep first
    slower = found[(found["sweep_id"] == newest) & (found["change"] == "slower")]
    if found.empty:
        out.say(f"no steps in {args.metric} (past x{args.ratio:g}) in {rows['sweep_id'].nunique()} sweeps")
    else:
        keys = [k for k in schema.config_keys() if k in found and found[k].nunique(dropna=False) > 1] or ["cell"]
        shown = found[[*keys, "machine", "sweep_id", "change", "ratio", "ci_low", "ci_high"]]
        out.say(shown.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    if args.csv is not None:
        out.say(f"changes: {args.csv}")
    if len(slower):
        _error(f"the newest sweep ({newest}) is slower in {len(slower)} configuration(s) (past x{args.ratio:g})")
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    out = Printer()
    try:
        if hasattr(args, "dirs"):
            return add(args.dirs, args.store, out)
        check_args(args)
        return show_changes(args, out) if args.changes else list_sweeps(args.store, out)
    except Refused as exc:
        _error(exc)
        return 2
    except store.StoreError as exc:
        _error(exc)
        return exc.code
    finally:
        out.close()


if __name__ == "__main__":
    sys.exit(main())
