"""This machine's GEMM peak per dtype and thread count, as ``rnnexp.peak`` measures it for ``peak_frac``.

    python benchmarks/gemm_peak.py                 # float32 and float64, 1 thread up to every usable core
    python benchmarks/gemm_peak.py --threads 1     # one thread count only
    python benchmarks/gemm_peak.py --spread 10     # 10 fresh processes per (dtype, threads): the peak's spread
    python benchmarks/gemm_peak.py --quick         # 128-square products, few rounds: for CI, figures meaningless

Each line: the peak (the faster library's best round; ``rnnexp.peak`` says how), every library's
figure, the rounds' own spread, and whether the measurement was loaded (other processes' CPU time
during it, and the 1-minute load average). Nothing is cached: each run measures afresh.

``--spread N`` measures N times, each in a fresh Python process, as N sweeps would, one after
another, and prints every figure and the spread max/min - 1 (target <= 10% on a quiet machine),
with the spread of the measurements that were not loaded apart from the rest.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rnnexp import peak  # noqa: E402
from rnnexp.threads import usable_cores  # noqa: E402

TARGET_SPREAD = 0.10
QUICK = {"size": 128, "rounds": 2, "warmup_s": 0.01}
ONE = """
import json, sys
from rnnexp import peak
dtype, threads, size, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
peak.WARMUP_S = float(sys.argv[5])
print(json.dumps(peak.measure_peak(dtype, threads, size, rounds)))
"""


def line(rec: dict) -> str:
    libs = ", ".join(
        f"{lib} {v['gflops']:.1f} (rounds spread {100 * v['rounds_spread']:.0f}%)"
        for lib, v in rec["libraries"].items()
    )
    load = f"other CPU {rec['other_cpu_s']:.2f} s in {rec['wall_s']:.2f} s, load {rec['load_avg_1m'] or 0:.2f}"
    flag = " LOADED" if rec["loaded"] else ""
    return f"{rec['gflops']:.1f} GFLOP/s [{libs}] n={rec['size']}; {load}{flag}"


def in_fresh_process(dtype: str, threads: int, size: int, rounds: int, warmup_s: float) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    cmd = [sys.executable, "-c", ONE, dtype, str(threads), str(size), str(rounds), str(warmup_s)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def spread(values: list[float]) -> float:
    return max(values) / min(values) - 1 if values else float("nan")


def run_spread(dtype: str, threads: int, n: int, size: int, rounds: int, warmup_s: float) -> dict:
    records = []
    for k in range(n):
        rec = in_fresh_process(dtype, threads, size, rounds, warmup_s)
        records.append(rec)
        print(f"  run {k + 1}/{n}: {line(rec)}", flush=True)
    figures = [r["gflops"] for r in records]
    quiet = [r["gflops"] for r in records if not r["loaded"]]
    verdict = "meets" if spread(figures) <= TARGET_SPREAD else "misses"
    print(
        f"gemm_peak spread {dtype} {threads}t: {100 * spread(figures):.1f}% over {n} runs "
        f"({min(figures):.1f}-{max(figures):.1f} GFLOP/s; {verdict} the {100 * TARGET_SPREAD:.0f}% target); "
        f"not loaded: {len(quiet)} runs, {100 * spread(quiet):.1f}%",
        flush=True,
    )
    return {
        "dtype": dtype,
        "threads": threads,
        "runs": records,
        "spread": spread(figures),
        "quiet_spread": spread(quiet),
    }


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small products, few rounds (for CI)")
    p.add_argument("--threads", type=int, nargs="*", help="thread counts (default: 1 .. usable cores)")
    p.add_argument("--dtype", nargs="*", default=["float32", "float64"])
    p.add_argument("--size", type=int, default=None, help=f"matrix size (default {peak.SIZE}, 128 with --quick)")
    p.add_argument("--rounds", type=int, default=None, help=f"rounds per measurement (default {peak.ROUNDS})")
    p.add_argument("--spread", type=int, default=0, metavar="N", help="N measurements in fresh processes each")
    p.add_argument("--json", type=Path, help="also write the records to this file")
    args = p.parse_args(argv)
    size = args.size or (QUICK["size"] if args.quick else peak.SIZE)
    rounds = args.rounds or (QUICK["rounds"] if args.quick else peak.ROUNDS)
    warmup_s = QUICK["warmup_s"] if args.quick else peak.WARMUP_S
    threads = args.threads or list(range(1, usable_cores() + 1))
    records = []
    for dtype in args.dtype:
        for n in threads:
            if args.spread:
                records.append(run_spread(dtype, n, args.spread, size, rounds, warmup_s))
                continue
            peak.WARMUP_S = warmup_s
            rec = peak.measure_peak(dtype, n, size, rounds)
            records.append(rec)
            print(f"gemm_peak {dtype} {n}t: {line(rec)}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(records, indent=2) + "\n")
    return records


if __name__ == "__main__":
    main()
