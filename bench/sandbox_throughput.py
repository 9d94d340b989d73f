"""Throughput of the sandbox's warm pool against a naive `subprocess.run([sys.executable, file])`.

    python bench/sandbox_throughput.py [--n 300] [--naive-n 100] [--rounds 3] [--workers N]

Runs short programs (prints, small loops, reading stdin) serially, each in a fresh interpreter
without any isolation (the naive baseline), and as batches of 300 through a warm
`sandbox.SandboxPool` with full isolation (bubblewrap + per-program namespaces, rlimits,
seccomp), in alternating rounds so that both see the same load on the machine. Checks that both
print the same, then prints both rates in programs/s and, as the last line, `ratio: X`.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sandbox import Limits, SandboxPool, Status  # noqa: E402


def make_programs(n: int) -> list[tuple[str, str]]:
    """(source, stdin) pairs: a little variety, all short, all must print the expected output."""
    kinds = [
        ("print('hello', {i})\n", ""),
        ("s = 0\nfor k in range({i} * 50):\n    s += k * k\nprint(s)\n", ""),
        ("import sys\nnums = list(map(int, sys.stdin.read().split()))\nprint(sum(nums) + {i})\n",
         "1 2 3 4 5 6 7 8 9 10\n"),
        ("a, b = map(int, input().split())\nprint(a * b, {i})\n", "6 7\n"),
        ("print(sorted([({i} * 7919) % 101, 5, 3, 9][::-1]))\n", ""),
        ("import math\nprint(math.factorial({i} % 50))\n", ""),
    ]
    out = []
    for i in range(n):
        src, stdin = kinds[i % len(kinds)]
        out.append((src.format(i=i), stdin))
    return out


def naive(programs: list[tuple[str, str]], paths: list[Path]) -> tuple[float, list[str]]:
    """Each program in a fresh interpreter, one after the other, no isolation."""
    outs = []
    t = time.perf_counter()
    for p, (_, stdin) in zip(paths, programs):
        r = subprocess.run([sys.executable, str(p)], input=stdin.encode(), capture_output=True, timeout=60)
        outs.append(r.stdout.decode())
    return time.perf_counter() - t, outs


def pooled(pool: SandboxPool, programs: list[tuple[str, str]]) -> tuple[float, list[str]]:
    t = time.perf_counter()
    results = pool.run_batch([{"program": s, "stdin": i} for s, i in programs])
    dt = time.perf_counter() - t
    bad = [r for r in results if r.status is not Status.OK]
    if bad:
        raise SystemExit(f"{len(bad)} programs failed in the sandbox, e.g. {bad[0]}")
    return dt, [r.stdout for r in results]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=300, help="programs in the batch (default 300)")
    ap.add_argument("--naive-n", type=int, default=100,
                    help="programs run naively per round (default 100; the rate is what counts)")
    ap.add_argument("--rounds", type=int, default=3,
                    help="alternating rounds of both (default 3), so both see the same machine load")
    ap.add_argument("--workers", type=int, default=None, help="pool size (default: three times the CPUs available)")
    args = ap.parse_args()
    programs = make_programs(args.n)
    naive_programs = programs[: args.naive_n]

    print(f"python: {sys.executable} ({sys.version.split()[0]}), CPUs: {os.cpu_count()}, "
          f"load average before: {os.getloadavg()[0]:.2f}")
    t_naive = t_pool = 0.0
    n_naive = n_pool = 0
    with tempfile.TemporaryDirectory() as d, SandboxPool(args.workers, limits=Limits(timeout_s=10)) as pool:
        paths = []
        for i, (src, _) in enumerate(naive_programs):
            p = Path(d) / f"p{i}.py"
            p.write_text(src)
            paths.append(p)
        pooled(pool, programs[:20])  # warm-up: the pool is started and reused, as in training
        for _ in range(args.rounds):
            dt, naive_out = naive(naive_programs, paths)
            t_naive += dt
            n_naive += len(naive_programs)
            dt, pool_out = pooled(pool, programs)
            t_pool += dt
            n_pool += len(programs)
            if pool_out[: len(naive_out)] != naive_out:
                i = next(i for i, (a, b) in enumerate(zip(pool_out, naive_out)) if a != b)
                raise SystemExit(f"outputs differ at program {i}: {pool_out[i]!r} vs {naive_out[i]!r}")
        workers = pool.workers
    naive_rate = n_naive / t_naive
    pool_rate = n_pool / t_pool
    print(f"naive: subprocess.run([sys.executable, file]) per program, serial, no isolation: "
          f"{n_naive} programs in {t_naive:.2f} s = {naive_rate:.1f} programs/s")
    print(f"sandbox: SandboxPool({workers} workers), bwrap isolation, batches of {len(programs)}: "
          f"{n_pool} programs in {t_pool:.2f} s = {pool_rate:.1f} programs/s")
    print(f"ratio: {pool_rate / naive_rate:.1f}")


if __name__ == "__main__":
    main()
