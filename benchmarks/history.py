"""How fast the history store appends and queries, and how often its step finder cries wolf.

    python benchmarks/history.py                # the figures docs/history.md quotes
    python benchmarks/history.py --quick        # small sizes (tests/test_history.py runs this)
    python benchmarks/history.py --json OUT     # the figures as JSON too

append: a 5,000-row sweep (10 blocks per row in samples.csv: 50,000 samples) read from its dir and
appended, as a finishing sweep does (``sweep_record.read`` of the dir, whose results.csv the CLI has
read already, + ``store.append``), into a store that already holds sweeps; median of 3 (each a
different sweep). Target: under a second.
query: one configuration's rows and samples across 1,000 stored sweeps of 50 rows each (the store
filled in bulk), as ``rnnexp history --changes --config ...`` reads them, then its steps found;
median of 5. Target: under a second.
false alarms: synthetic series of 30 sweeps (8 blocks each: a per-sweep offset, block noise, 5%
slow outlier blocks) with no step; the share of series where a step is reported at the default
--ratio, for sweep-to-sweep noise of 1%, 3% and 6%. Detection: the same with a 1.5x and a 2x step
at a random sweep (a process sharing the core roughly doubles a single-threaded job's time).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rnnexp import manifest, schema, store, sweep_record  # noqa: E402
from rnnexp.review import changes, history  # noqa: E402
from rnnexp.review.compare import RATIO  # noqa: E402

CELLS = ("rnn", "lstm", "gru")


def sweep_dir(folder: Path, n_rows: int, blocks: int, created: str, rng: np.random.Generator) -> Path:
    """A sweep dir as rnnexp writes one (manifest, results.csv, samples.csv, env.json), without running jobs."""
    folder.mkdir(parents=True)
    jobs, rows = [], []
    for num in range(n_rows):
        config = {"cell": CELLS[num % 3], "hidden_size": 8 + num // 3, "backend": "numpy"}
        jobs.append(manifest.Job(num, [f"{k}={v}" for k, v in config.items()], config, str(num)))
        rows.append({**config, "status": "ok", "job_num": num, "time_median_ms": 1.0, "cpu_model": "Bench CPU"})
    manifest.Manifest("sweep", ["-m", "bench"], jobs, created).write(folder)
    schema.conform_frame(pd.DataFrame(rows)).to_csv(folder / "results.csv", index=False)
    times = 1e-3 * np.exp(rng.normal(0, 0.02, n_rows * blocks))
    samples = pd.DataFrame({"job_num": np.repeat(np.arange(n_rows), blocks), "phase": "forward",
                            "block": np.tile(np.arange(blocks), n_rows), "block_size": 4,
                            "block_time_s": 4 * times})  # fmt: skip
    samples.to_csv(folder / "samples.csv", index=False)
    (folder / "env.json").write_text(json.dumps({"cpu_model": "Bench CPU", "cores_usable": 2, "git_commit": "b"}))
    return folder


def bench_append(tmp: Path, n_rows: int, rounds: int = 3) -> dict:
    rng = np.random.default_rng(0)
    db = tmp / "append.duckdb"
    store.append(db, sweep_record.read(sweep_dir(tmp / "first", 10, 10, "2026-01-01T00:00:00Z", rng)))
    reads, appends = [], []
    for i in range(rounds):
        folder = sweep_dir(tmp / f"big{i}", n_rows, 10, f"2026-01-0{i + 2}T00:00:00Z", rng)
        table = schema.read_table(folder / "results.csv")  # read by the CLI at a sweep's end anyway
        t0 = time.perf_counter()
        record = sweep_record.read(folder, table)
        t1 = time.perf_counter()
        store.append(db, record)
        t2 = time.perf_counter()
        reads.append(t1 - t0)
        appends.append(t2 - t1)
    total = [r + a for r, a in zip(reads, appends, strict=True)]
    return {"rows": n_rows, "samples": n_rows * 10, "read_s": statistics.median(reads),
            "append_s": statistics.median(appends), "total_s": statistics.median(total), "rounds": rounds}  # fmt: skip


def fill(db: Path, n_sweeps: int, rows_per: int, blocks: int) -> None:
    """A store holding ``n_sweeps`` sweeps, written in bulk (appending them one by one would take minutes)."""
    rng = np.random.default_rng(1)
    store.append(db, sweep_record.read(sweep_dir(db.parent / "seed", rows_per, blocks, "2026-01-01T00:00:00Z", rng)))
    base = store.select(db)[0].drop(columns=["machine", "started_utc"])
    with store.connect(db, writing=True) as con:
        meta = con.execute("SELECT * FROM sweeps").df()
        ids = np.arange(2, n_sweeps + 1)
        sweeps = meta.loc[meta.index.repeat(len(ids))].assign(sweep_id=ids, key=[f"k{i}" for i in ids])
        sweeps["started_utc"] = [f"2026-02-01T00:00:00Z{i:06d}" for i in ids]
        rows = base.loc[base.index.repeat(len(ids))].assign(sweep_id=np.tile(ids, len(base)))
        n = len(rows) * blocks
        samples = pd.DataFrame({"sweep_id": np.repeat(rows["sweep_id"].to_numpy(), blocks),
                                "job_num": np.repeat(rows["job_num"].to_numpy(), blocks), "phase": "forward",
                                "block": np.tile(np.arange(blocks), len(rows)), "block_size": 4,
                                "block_time_s": 4e-3 * np.exp(rng.normal(0, 0.02, n))})  # fmt: skip
        con.begin()
        for name, frame in (("sweeps", sweeps), ("rows", rows), ("samples", samples)):
            con.register("bulk", frame)
            con.execute(f"INSERT INTO {name} BY NAME SELECT * FROM bulk")
            con.unregister("bulk")
        con.commit()


def bench_query(tmp: Path, n_sweeps: int, rows_per: int, rounds: int = 5) -> dict:
    db = tmp / "query.duckdb"
    fill(db, n_sweeps, rows_per, 10)
    selects, finds = [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        wanted = [*schema.of_kind(schema.CONFIG), "status", "job_num", "git_commit"]  # as history --changes reads
        rows, samples = store.select(db, {"cell": "lstm", "hidden_size": 8}, phases=("forward",), columns=wanted)
        t1 = time.perf_counter()
        found = history.find(rows, samples, "time_median_ms", RATIO)
        t2 = time.perf_counter()
        selects.append(t1 - t0)
        finds.append(t2 - t1)
    return {"sweeps": n_sweeps, "stored_rows": n_sweeps * rows_per, "stored_samples": n_sweeps * rows_per * 10,
            "rows_found": len(rows), "samples_found": len(samples), "steps": len(found),
            "select_s": statistics.median(selects), "find_steps_s": statistics.median(finds),
            "rounds": rounds}  # fmt: skip


def synthetic(rng: np.random.Generator, sweep_sd: float, factor: float, at: int, n: int = 30) -> list[np.ndarray]:
    out = []
    for i in range(n):
        blocks = 1e-3 * (factor if i >= at else 1.0) * np.exp(rng.normal(0, sweep_sd) + rng.normal(0, 0.02, 8))
        blocks[rng.random(8) < 0.05] *= 1.3
        out.append(blocks)
    return out


def bench_alarms(n_series: int) -> dict:
    rng = np.random.default_rng(2)
    out = {"series": n_series, "sweeps": 30, "ratio": RATIO, "false_alarms": {}, "detected": {}}
    for sd in (0.01, 0.03, 0.06):
        hits = sum(bool(changes.find_steps(synthetic(rng, sd, 1.0, 30), RATIO)) for _ in range(n_series))
        out["false_alarms"][f"sweep_sd={sd}"] = hits / n_series
    for factor in (1.5, 2.0):
        found = 0
        for _ in range(n_series):
            at = int(rng.integers(1, 30))
            found += [s.index for s in changes.find_steps(synthetic(rng, 0.03, factor, at), RATIO)] == [at]
        out["detected"][f"x{factor} (sweep_sd=0.03)"] = found / n_series
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: checks the script runs")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        a = bench_append(Path(tmp), 200 if args.quick else 5000, rounds=1 if args.quick else 3)
        q = bench_query(Path(tmp), 20 if args.quick else 1000, 50, rounds=1 if args.quick else 5)
    f = bench_alarms(20 if args.quick else 500)
    print(f"append {a['rows']}-row sweep ({a['samples']} samples): read {a['read_s']:.3f} s + "
          f"append {a['append_s']:.3f} s = {a['total_s']:.3f} s (median of {a['rounds']})")  # fmt: skip
    print(f"query one configuration across {q['sweeps']} sweeps ({q['stored_rows']} rows, {q['stored_samples']} "
          f"samples stored): select {q['select_s']:.3f} s ({q['rows_found']} rows, {q['samples_found']} samples) + "
          f"find steps {q['find_steps_s']:.3f} s (median of {q['rounds']})")  # fmt: skip
    for name, share in f["false_alarms"].items():
        print(f"false alarms, quiet series ({name}, {f['series']} series of {f['sweeps']} sweeps): {share:.1%}")
    for name, share in f["detected"].items():
        print(f"step found at its sweep, {name}: {share:.1%}")
    if args.json:
        args.json.write_text(json.dumps({"append": a, "query": q, "alarms": f}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
