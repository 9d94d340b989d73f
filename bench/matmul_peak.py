"""The matrix-multiply throughput this machine gives torch, the bound on a training step's passes.

    python bench/matmul_peak.py --threads 2

Times ``x @ w`` for the shapes of a decoder's projections (rows = tokens in a pass, hidden ->
hidden, hidden -> 4 x hidden) in float32 and bfloat16, and prints GFLOP/s for each, best of
``--reps``; the last line is ``peak_float32_gflops: X``. A step's forward and backward passes
cost about ``6 x parameters x positions`` FLOPs, so their seconds against this figure say how
close a pass is to what the cores can do.
"""

from __future__ import annotations

import argparse
import time

import torch


def gflops(rows: int, k: int, n: int, dtype: torch.dtype, reps: int) -> float:
    x, w = torch.randn(rows, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
    x @ w  # warm-up
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        x @ w
        best = min(best, time.perf_counter() - t0)
    return 2 * rows * k * n / best / 1e9


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rows", type=int, default=4096, help="tokens in a pass")
    p.add_argument("--hidden", type=int, nargs="+", default=[256, 576])
    p.add_argument("--reps", type=int, default=10)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    peak = {torch.float32: 0.0, torch.bfloat16: 0.0}
    print(f"{'hidden':>6} {'shape':>16} {'float32 GFLOP/s':>16} {'bfloat16 GFLOP/s':>17}")
    for h in args.hidden:
        for k, n in ((h, h), (h, 4 * h), (4 * h, h)):
            row = {dt: gflops(args.rows, k, n, dt, args.reps) for dt in peak}
            for dt, v in row.items():
                peak[dt] = max(peak[dt], v)
            print(f"{h:>6} {f'{k}x{n}':>16} {row[torch.float32]:16.1f} {row[torch.bfloat16]:17.1f}")
    print(f"peak_bfloat16_gflops: {peak[torch.bfloat16]:.1f}")
    print(f"peak_float32_gflops: {peak[torch.float32]:.1f}")


if __name__ == "__main__":
    main()
