"""This machine's GEMM peak per dtype and thread count, as ``rnnexp.peak`` measures it for ``peak_frac``.

    python benchmarks/gemm_peak.py                 # float32 and float64, 1 thread up to every usable core
    python benchmarks/gemm_peak.py --threads 1     # one thread count only
    python benchmarks/gemm_peak.py --quick         # 128-square products: for CI, figures meaningless

Each line: the peak (the faster library's median GFLOP/s over timed blocks of n-square products)
and every library's median and best. Nothing is cached: each run measures afresh.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rnnexp.peak import SIZE, measure_peak  # noqa: E402


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small products (for CI)")
    p.add_argument("--threads", type=int, nargs="*", help="thread counts (default: 1 .. usable cores)")
    p.add_argument("--dtype", nargs="*", default=["float32", "float64"])
    p.add_argument("--size", type=int, default=None, help=f"matrix size (default {SIZE}, 128 with --quick)")
    p.add_argument("--json", type=Path, help="also write the records to this file")
    args = p.parse_args(argv)
    size = args.size or (128 if args.quick else SIZE)
    threads = args.threads or list(range(1, usable_cores() + 1))
    records = []
    for dtype in args.dtype:
        for n in threads:
            rec = measure_peak(dtype, n, size)
            records.append(rec)
            libs = ", ".join(
                f"{lib} {v['gflops']:.1f} (best {v['gflops_best']:.1f})" for lib, v in rec["libraries"].items()
            )
            print(f"gemm_peak {dtype} {n}t: {rec['gflops']:.1f} GFLOP/s [{libs}] n={size}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(records, indent=2) + "\n")
    return records


if __name__ == "__main__":
    main()
