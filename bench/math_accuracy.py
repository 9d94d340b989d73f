"""Accuracy of the ``math`` verifier against math-verify 0.9.0 used directly, on labeled cases.

    python bench/math_accuracy.py [--data cases.jsonl ...] [--write-jsonl out.jsonl] [--show-misses]

Cases are (gold, completion, expected) with expected in correct | incorrect | unverifiable.
By default they are the table of ``tests/test_math_verifier.py`` plus every labeled set
``tests/data/math_cases*.jsonl``; ``--data`` reads the given JSONL files instead, one object
per line with ``gold`` (or ``answer``), ``completion``, ``expected`` and optionally
``category``, ``id`` and ``finish_reason`` (``stop``, the default, or ``length``: the
completion was cut at max_new_tokens). A case counts as a hacking case when its category is
``hacking`` or it has ``"hack": true``.

math-verify is used the way its README shows: ``verify(parse(gold), parse(completion))``,
with the gold wrapped in ``$...$`` (and parsed bare if that yields nothing), default
extraction configs, and both timeouts off (``parsing_timeout=None``,
``timeout_seconds=None``: its timeouts use ``signal.alarm``). It is judged ``unverifiable``
when the gold parses to nothing, ``correct`` when ``verify`` is true, else ``incorrect``.
math-verify has no notion of a finish reason, so it judges a truncated completion like any other.

Each verifier runs in its own worker process with a per-case deadline (``--timeout``,
default 10 s), the way the sandbox runs verifiers: a case past the deadline kills the
worker (a fresh one takes over) and counts as ``unverifiable``. This matters for
math-verify, which with its timeouts off never returns on inputs like ``10^{10^{10}}``.

Prints accuracy of each, hacking cases accepted, per-category accuracy and the median time
per case (measured inside the worker); the last line is ``ours: X  math-verify: Y``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import multiprocessing as mp
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from verifiers.math import math_verifier  # noqa: E402


def load_table() -> list[dict]:
    spec = importlib.util.spec_from_file_location("math_verifier_table", ROOT / "tests" / "test_math_verifier.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return [
        {"id": c.id, "category": c.category, "gold": c.gold, "completion": c.completion, "expected": c.expected}
        for c in module.CASES
    ]


def load_jsonl(path: Path) -> list[dict]:
    cases = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        cases.append(
            {
                "id": row.get("id", f"line-{n}"),
                "category": row.get("category", "all"),
                "gold": row["gold"] if "gold" in row else row["answer"],
                "completion": row["completion"],
                "expected": row["expected"],
                "hack": bool(row.get("hack", False)),
                "finish_reason": row.get("finish_reason", "stop"),
            }
        )
    return cases


def math_verify_status(gold, completion: str, finish_reason: str = "stop") -> str:
    from math_verify import parse, verify

    gold_text = str(gold) if gold is not None else ""
    parsed_gold = parse(f"${gold_text}$", parsing_timeout=None) if gold_text else []
    if not parsed_gold and gold_text:
        parsed_gold = parse(gold_text, parsing_timeout=None)
    if not parsed_gold:
        return "unverifiable"
    parsed_pred = parse(completion, parsing_timeout=None)
    return "correct" if verify(parsed_gold, parsed_pred, timeout_seconds=None) else "incorrect"


def ours_status(gold, completion: str, finish_reason: str = "stop") -> str:
    return math_verifier(completion, {"answer": gold}, finish_reason=finish_reason).status


JUDGES = {"ours": ours_status, "math-verify": math_verify_status}


def _serve(name: str, conn) -> None:
    logging.disable(logging.WARNING)  # math-verify warns once that its timeouts are off
    judge = JUDGES[name]
    while True:
        gold, completion, finish_reason = conn.recv()
        start = time.perf_counter()
        status = judge(gold, completion, finish_reason)
        conn.send((status, time.perf_counter() - start))


class Worker:
    """One verifier in a child process; a case that runs past ``timeout`` kills it and counts as unverifiable."""

    def __init__(self, name: str, timeout: float):
        self.name, self.timeout, self.process = name, timeout, None
        self.timeouts = 0

    def _start(self) -> None:
        self.conn, child = mp.Pipe()
        self.process = mp.get_context("fork").Process(target=_serve, args=(self.name, child), daemon=True)
        self.process.start()

    def judge(self, gold, completion: str, finish_reason: str = "stop") -> tuple[str, float]:
        if self.process is None:
            self._start()
        self.conn.send((gold, completion, finish_reason))
        if self.conn.poll(self.timeout):
            return self.conn.recv()
        self.process.kill()
        self.process.join()
        self.process, self.timeouts = None, self.timeouts + 1
        return "unverifiable", self.timeout

    def close(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.join()


def run(cases: list[dict], name: str, timeout: float) -> tuple[list[str], list[float], int]:
    worker = Worker(name, timeout)
    try:
        for case in cases[:20]:  # parsers build their tables and caches on first use
            worker.judge(case["gold"], case["completion"])
        results = [worker.judge(case["gold"], case["completion"], case.get("finish_reason", "stop")) for case in cases]
    finally:
        worker.close()
    return [r[0] for r in results], [r[1] for r in results], worker.timeouts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, nargs="+",
                    help="labeled JSONL files (default: the test table and tests/data/math_cases*.jsonl)")
    ap.add_argument("--write-jsonl", type=Path, help="write the cases used as JSONL and exit")
    ap.add_argument("--show-misses", action="store_true", help="list the cases each verifier gets wrong")
    ap.add_argument("--timeout", type=float, default=10.0, help="per-case deadline in seconds (default 10)")
    args = ap.parse_args()
    logging.disable(logging.WARNING)  # math-verify warns once that its timeouts are off

    if args.data:
        missing = [str(p) for p in args.data if not p.is_file()]
        if missing:
            raise SystemExit(f"--data: no such file: {', '.join(missing)}")
        cases = [case for path in args.data for case in load_jsonl(path)]
    else:
        cases = load_table() + [
            case for path in sorted((ROOT / "tests" / "data").glob("math_cases*.jsonl")) for case in load_jsonl(path)
        ]
    if args.write_jsonl:
        with args.write_jsonl.open("w") as f:
            for case in cases:
                f.write(json.dumps(case, ensure_ascii=False) + "\n")
        print(f"wrote {len(cases)} cases to {args.write_jsonl}")
        return

    ours, ours_times, ours_timeouts = run(cases, "ours", args.timeout)
    theirs, their_times, their_timeouts = run(cases, "math-verify", args.timeout)

    def is_hack(case: dict) -> bool:
        return case.get("hack", False) or case["category"] == "hacking"

    by_category: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
    for case, a, b in zip(cases, ours, theirs):
        by_category[case["category"]].append((a == case["expected"], b == case["expected"]))
    n = len(cases)
    ours_acc = sum(a == c["expected"] for c, a in zip(cases, ours)) / n
    theirs_acc = sum(b == c["expected"] for c, b in zip(cases, theirs)) / n
    hacks = [i for i, c in enumerate(cases) if is_hack(c)]
    ours_hacks = sum(ours[i] == "correct" for i in hacks)
    theirs_hacks = sum(theirs[i] == "correct" for i in hacks)

    print(f"{n} cases, {len(hacks)} hacking cases")
    print(f"{'category':<16} {'n':>4} {'ours':>7} {'math-verify':>12}")
    for category, rows in by_category.items():
        k = len(rows)
        print(f"{category:<16} {k:>4} {sum(a for a, _ in rows) / k:>7.1%} {sum(b for _, b in rows) / k:>12.1%}")
    print(f"hacking cases accepted: ours {ours_hacks}/{len(hacks)}, math-verify {theirs_hacks}/{len(hacks)}")
    print(f"cases past the {args.timeout:g} s deadline: ours {ours_timeouts}, math-verify {their_timeouts}")
    print(
        f"median time per case: ours {statistics.median(ours_times) * 1e3:.2f} ms "
        f"(p90 {sorted(ours_times)[int(0.9 * n)] * 1e3:.1f} ms, max {max(ours_times) * 1e3:.0f} ms), "
        f"math-verify {statistics.median(their_times) * 1e3:.2f} ms"
    )
    if args.show_misses:
        for name, statuses in (("ours", ours), ("math-verify", theirs)):
            print(f"\nmisses of {name}:")
            for case, status in zip(cases, statuses):
                if status != case["expected"]:
                    print(f"  {case['id']}: expected {case['expected']}, got {status}")
    print(f"ours: {ours_acc:.1%}  math-verify: {theirs_acc:.1%}")


if __name__ == "__main__":
    main()
