"""grpo.eval: maj@k against brute force, bootstrap intervals, evaluate() on scripted completions, reports, plots."""

import itertools
import json
import math
import random

import numpy as np
import pytest

from grpo.eval import bootstrap_ci, evaluate, maj_at_k, pass_at_k, strip_stop, write_reports
from grpo.engines.base import Completions, SamplingParams
from verifiers import Verdict


def maj_reference(answers, correct, k):
    """Average, over every k-subset, of the correctness of its most frequent answer (ties: first seen overall)."""
    first_seen = {}
    for a in answers:
        if a is not None:
            first_seen.setdefault(a, len(first_seen))
    total = 0.0
    subsets = list(itertools.combinations(range(len(answers)), k))
    for subset in subsets:
        votes = {}
        for i in subset:
            if answers[i] is not None:
                votes[answers[i]] = votes.get(answers[i], 0) + 1
        if not votes:
            continue  # nobody voted: the vote is wrong
        top = max(votes.values())
        winner = min((a for a in votes if votes[a] == top), key=first_seen.get)
        group = [float(correct[i]) for i in range(len(answers)) if answers[i] == winner]
        total += sum(group) / len(group)
    return total / len(subsets)


def test_maj_at_k_matches_brute_force():
    rng = random.Random(0)
    for _ in range(400):
        n = rng.randint(1, 10)
        k = rng.randint(1, n)
        answers = [rng.choice([None, "1", "2", "3", "4"]) for _ in range(n)]
        correct = [a == "1" for a in answers]
        if rng.random() < 0.2:  # an inconsistent verifier: the same answer judged both ways
            correct = [rng.random() < 0.5 for _ in answers]
        assert maj_at_k(answers, correct, k) == pytest.approx(maj_reference(answers, correct, k), abs=1e-12)


def test_maj_at_k_edges():
    assert maj_at_k(["1"] * 5, [True] * 5, 3) == 1.0
    assert maj_at_k([None] * 4, [False] * 4, 2) == 0.0
    # k = 1: the share of samples that answer correctly
    assert maj_at_k(["1", "2", None, "1"], [True, False, False, True], 1) == pytest.approx(0.5)
    # k = n: the majority of all samples; a tie goes to the answer seen first
    assert maj_at_k(["2", "1", "1", "2"], [False, True, True, False], 4) == 0.0
    assert maj_at_k(["1", "2", "1", "2"], [True, False, True, False], 4) == 1.0
    # majority voting beats sampling once when the right answer is the most common one
    answers = ["7"] * 6 + [f"w{i}" for i in range(10)]
    correct = [a == "7" for a in answers]
    assert maj_at_k(answers, correct, 9) > maj_at_k(answers, correct, 1) == pytest.approx(6 / 16)
    # large n stays fast and exact enough
    big = [str(i % 5) for i in range(200)]
    assert 0.0 < maj_at_k(big, [a == "0" for a in big], 16) < 1.0
    with pytest.raises(ValueError):
        maj_at_k(["1"], [True], 2)


def test_bootstrap_interval():
    values = np.array([[1.0, 0.2], [0.0, 0.4], [1.0, 0.6], [0.0, 0.8]] * 25)  # (100, 2)
    low, high = bootstrap_ci(values, resamples=2000, seed=1)
    assert low.shape == high.shape == (2,)
    assert np.all(low < values.mean(axis=0)) and np.all(values.mean(axis=0) < high)
    # a mean of 100 fair coins: the 95% interval is about +-0.1
    assert 0.07 < (high[0] - low[0]) / 2 < 0.13
    again = bootstrap_ci(values, resamples=2000, seed=1)
    assert np.array_equal(low, again[0]) and np.array_equal(high, again[1])
    constant = bootstrap_ci(np.ones((5, 1)), resamples=100, seed=0)
    assert constant[0][0] == constant[1][0] == 1.0
    assert np.isnan(bootstrap_ci(np.zeros((0, 3)))[0]).all()


class ScriptedEngine:
    """A RolloutEngine that answers prompt p with scripts[p] (n completions, in order)."""

    def __init__(self, scripts, stop_suffix=""):
        self.scripts = scripts
        self.stop_suffix = stop_suffix
        self.calls = []

    def generate(self, prompt_ids, n, sampling):
        self.calls.append(len(prompt_ids))
        out = Completions()
        for i, prompt in enumerate(prompt_ids):
            script = self.scripts[prompt[0]]
            assert len(script) == n
            for text in script:
                out.prompt_index.append(i)
                out.token_ids.append(list(range(len(text.split()) + 1)))
                out.logprobs.append([0.0] * (len(text.split()) + 1))
                ends = text.endswith(self.stop_suffix) if self.stop_suffix else True
                out.text.append(text)
                out.finish_reason.append("stop" if ends else "length")
        return out

    def load_weights(self, named_tensors):
        pass


def answer_is(completion, example):
    """Reads the last word as the answer; 'crash' is a verifier failure."""
    words = completion.split()
    if not words:
        return Verdict("incorrect", 0.0, "empty")
    if words[-1] == "crash":
        return Verdict("unverifiable", 0.0, "cannot judge")
    ok = words[-1] == example["answer"]
    return Verdict("correct" if ok else "incorrect", 1.0 if ok else 0.0, "", words[-1])


SCRIPTS = [
    ["a 5", "b 5", "c 4", "d 5"],  # 3 of 4 correct
    ["x 9", "x 8", "x 8", "x crash"],  # 0 correct, one unverifiable
    ["7", "7", "7", "7"],  # all correct
]
ROWS = [{"answer": "5"}, {"answer": "7"}, {"answer": "7"}]


@pytest.mark.parametrize("chunk", [None, 1, 2])
def test_evaluate_counts_scores_and_intervals(chunk):
    engine = ScriptedEngine(SCRIPTS)
    progress = []
    result = evaluate(engine, [[0], [1], [2]], ROWS, answer_is, n=4, ks=(1, 2, 4), sampling=SamplingParams(),
                      bootstrap=500, seed=3, problems_per_chunk=chunk, progress=progress.append)
    assert [q["c"] for q in result.per_problem] == [3, 0, 4]
    for k in (1, 2, 4):
        expected = (pass_at_k(4, 3, k) + pass_at_k(4, 0, k) + pass_at_k(4, 4, k)) / 3
        assert result.pass_at[k] == pytest.approx(expected)
        expected_maj = sum(maj_reference([s.split()[-1] if s.split()[-1] != "crash" else None for s in script],
                                         [s.split()[-1] == row["answer"] for s in script], k)
                           for script, row in zip(SCRIPTS, ROWS)) / 3
        assert result.maj_at[k] == pytest.approx(expected_maj)
        low, high = result.ci95[f"pass@{k}"]
        assert low <= result.pass_at[k] <= high
    assert result.mean_reward == pytest.approx(7 / 12)
    assert result.unverifiable_rate == pytest.approx(1 / 12)
    assert result.n_problems == 3 and result.n_samples == 4
    assert progress[-1] == 3 and len(engine.calls) == (1 if chunk is None else math.ceil(3 / chunk))
    assert result.per_problem[0]["majority_answer"] == "5"
    assert result.per_problem[1]["verdicts"][3]["status"] == "unverifiable"
    summary = result.summary()
    assert summary["pass@1"] == result.pass_at[1] and "maj@4" in summary and "pass@4_ci_high" in summary


def test_evaluate_strips_the_stop_string_and_skips_maj_without_answers():
    engine = ScriptedEngine([["x 5\n\n", "x 5"], ["y 5\n\n", "y 6\n\n"]], stop_suffix="\n\n")
    seen = []

    def no_answers(completion, example):
        seen.append(completion)
        ok = completion.endswith(example["answer"])
        return Verdict("correct" if ok else "incorrect", float(ok), "")

    result = evaluate(engine, [[0], [1]], [{"answer": "5"}, {"answer": "5"}], no_answers, n=2, ks=(1, 2),
                      sampling=SamplingParams(stop=("\n\n",)), bootstrap=0)
    assert seen == ["x 5", "x 5", "y 5", "y 6"]  # judged without the stop string
    assert [q["c"] for q in result.per_problem] == [2, 1]
    assert result.maj_at == {} and "maj_at" not in result.per_problem[0]  # the verifier extracts no answers
    assert result.ci95 == {}
    assert result.truncation_rate == pytest.approx(0.25)
    assert strip_stop("abc</s>", "length", ["</s>"]) == "abc</s>"  # a cut completion ended on no stop string


def test_evaluate_rejects_k_above_n():
    with pytest.raises(ValueError, match="k"):
        evaluate(ScriptedEngine(SCRIPTS), [[0]], ROWS[:1], answer_is, n=4, ks=(8,), sampling=SamplingParams())


def test_reports_are_well_formed(tmp_path):
    result = evaluate(ScriptedEngine(SCRIPTS), [[0], [1], [2]], ROWS, answer_is, n=4, ks=(1, 4),
                      sampling=SamplingParams(), bootstrap=200)
    meta = {"model": "m", "task": "t", "split": "test", "seed": 0, "bootstrap": 200,
            "sampling": {"temperature": 1.0, "top_p": 1.0, "top_k": 0, "max_new_tokens": 8}}
    paths = write_reports(result, tmp_path / "out", meta, [{"id": f"p{i}", "prompt": "q"} for i in range(3)])
    lines = [json.loads(line) for line in paths["per_problem"].read_text().splitlines()]
    assert [q["id"] for q in lines] == ["p0", "p1", "p2"] and [q["c"] for q in lines] == [3, 0, 4]
    assert all(len(q["completions"]) == len(q["verdicts"]) == q["n"] == 4 for q in lines)
    summary = json.loads(paths["summary"].read_text())
    assert summary["task"] == "t" and summary["n_problems"] == 3 and summary["n"] == 4
    assert set(summary["metrics"]) >= {"pass@1", "pass@4", "maj@1", "maj@4", "mean_reward", "unverifiable_rate"}
    low, high = summary["metrics"]["pass@1"]["ci95"]
    assert low <= summary["metrics"]["pass@1"]["value"] <= high
    report = paths["report"].read_text()
    assert "| metric | value | 95% CI |" in report
    assert f"| pass@1 | {result.pass_at[1]:.3f} |" in report and "| maj@4 |" in report


def test_plots_draw_heldout_pass_at_k_with_intervals(tmp_path):
    from grpo.plots import write_plots

    rows = []
    for step in (1, 2, 3):
        row = {"step": step, "reward/mean": 0.1 * step}
        if step != 2:
            for k in (1, 4, 16):
                row.update({f"eval/pass@{k}": 0.1 * step + 0.01 * k, f"eval/pass@{k}_ci_low": 0.05,
                            f"eval/pass@{k}_ci_high": 0.9, f"eval/maj@{k}": 0.05 * step})
            row["eval/mean_reward"] = 0.2
        rows.append(row)
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    written = {p.name for p in write_plots(tmp_path)}
    assert {"heldout_pass_at_1.png", "heldout_pass_at_k.png", "heldout_reward.png", "reward.png"} <= written
    for name in ("heldout_pass_at_1.png", "heldout_pass_at_k.png"):
        assert (tmp_path / "plots" / name).read_bytes()[:4] == b"\x89PNG"
