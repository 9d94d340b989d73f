"""End-to-end runs of the real ``rlvr eval`` (and of evaluation during ``rlvr train``) on a tiny local model."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1",
       "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
PROBLEMS = [
    {"question": "What is 2 + 3?", "answer": "5"},
    {"question": "What is 4 + 4?", "answer": "8"},
    {"question": "What is 9 + 0?", "answer": "9"},
]


def rlvr(*args, check=True, env=None, cwd=None):
    proc = subprocess.run([sys.executable, "-m", "grpo.cli", *args], capture_output=True, text=True,
                          env=env or ENV, timeout=600, cwd=cwd)
    if check and proc.returncode != 0:
        raise AssertionError(f"rlvr {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture
def math_task(tmp_path) -> Path:
    """A user's math task: a YAML beside local JSONL files, paths relative to the YAML."""
    data = tmp_path / "my_task" / "data"
    data.mkdir(parents=True)
    (data / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in PROBLEMS * 3))
    (data / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in PROBLEMS))
    spec = tmp_path / "my_task" / "task.yaml"
    spec.write_text(yaml.safe_dump({
        "name": "my_math", "verifier": "math",
        "data_files": {"train": "data/train.jsonl", "test": "data/test.jsonl"},
        "prompt_template": "Question: {question}\nAnswer:",
    }))
    return spec


def read_reports(out: Path, n_problems: int, n: int, ks: list[int]) -> tuple[list[dict], dict, str]:
    """The three reports, checked for shape."""
    per_problem = [json.loads(line) for line in (out / "per_problem.jsonl").read_text().splitlines()]
    assert len(per_problem) == n_problems
    for q in per_problem:
        assert q["n"] == n and 0 <= q["c"] <= n
        assert len(q["completions"]) == len(q["verdicts"]) == len(q["finish_reasons"]) == n
        assert all(v["status"] in ("correct", "incorrect", "unverifiable") for v in q["verdicts"])
        assert sum(v["status"] == "correct" for v in q["verdicts"]) == q["c"]
        assert set(q["pass_at"]) == {str(k) for k in ks} and "prompt" in q and "id" in q
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_problems"] == n_problems and summary["n"] == n and summary["ks"] == ks
    for k in ks:
        metric = summary["metrics"][f"pass@{k}"]
        assert 0.0 <= metric["ci95"][0] <= metric["value"] <= metric["ci95"][1] <= 1.0
    assert 0.0 <= summary["metrics"]["unverifiable_rate"] <= 1.0
    report = (out / "report.md").read_text()
    assert report.startswith("# Evaluation:") and "| metric | value | 95% CI |" in report
    assert all(f"| pass@{k} |" in report for k in ks)
    return per_problem, summary, report


def test_eval_a_local_math_task_yaml(tiny_model_dir, math_task, tmp_path):
    out = tmp_path / "out"
    proc = rlvr("eval", "--model", str(tiny_model_dir), "--task", str(math_task), "--n", "4", "--k", "1,2,4",
                "--max-new-tokens", "12", "--output", str(out), "--threads", "1", "--no-progress")
    per_problem, summary, report = read_reports(out, 3, 4, [1, 2, 4])
    assert [q["answer"] for q in per_problem] == ["5", "8", "9"]
    assert per_problem[0]["prompt"] == "Question: What is 2 + 3?\nAnswer:"
    assert summary["task"] == "my_math" and summary["verifier"] == "math" and summary["task_source"] == str(math_task)
    assert summary["sampling"]["max_new_tokens"] == 12
    assert "| pass@1 |" in proc.stdout  # the table is printed too
    # the math verifier extracts answers, so maj@k is reported (a random model still writes digits)
    if any("extracted" in v for q in per_problem for v in q["verdicts"]):
        assert "maj@4" in summary["metrics"] and "| maj@4 |" in report


def test_eval_humaneval_with_a_limit(tiny_model_dir, tmp_path):
    out = tmp_path / "he"
    rlvr("eval", "--model", str(tiny_model_dir), "--task", "humaneval", "--limit", "3", "--n", "2",
         "--max-new-tokens", "12", "--output", str(out), "--threads", "1", "--no-progress")
    per_problem, summary, _ = read_reports(out, 3, 2, [1, 2])
    assert [q["id"] for q in per_problem] == ["HumanEval/0", "HumanEval/1", "HumanEval/2"]
    assert summary["verifier"] == "code" and summary["sampling"]["stop"]  # HumanEval's stop strings
    # a random model writes no working function; the code verifier judges it, it does not fail to
    assert summary["metrics"]["pass@1"]["value"] == 0.0 and summary["metrics"]["unverifiable_rate"] == 0.0


def test_train_on_a_task_yaml_evaluates_plots_and_evals_its_checkpoint(tiny_model_dir, math_task, tmp_path):
    run = tmp_path / "run"
    rlvr("train", "--set", f"model.path={tiny_model_dir}", "--set", f"task={math_task}", "--set", "steps=2",
         "--set", "save_every=2", "--set", "eval.problems=3", "--set", "eval.every=1", "--set", "eval.n=4",
         "--set", "eval.ks=[1,4]", "--set", "eval.max_new_tokens=8", "--set", "eval.temperature=0.7",
         "--set", "algo.prompts_per_step=2", "--set", "algo.group_size=2", "--set", "rollout.max_new_tokens=8",
         "--set", "rollout.engine=hf", "--set", "threads=1", "--output-dir", str(run), "--no-progress")
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for m in metrics:  # held-out evaluation at every step, with its intervals
        for key in ("eval/pass@1", "eval/pass@4", "eval/pass@1_ci_low", "eval/pass@1_ci_high", "eval/mean_reward",
                    "eval/unverifiable_rate"):
            assert key in m, key
    for name in ("heldout_pass_at_1.png", "heldout_pass_at_k.png", "heldout_reward.png"):
        assert (run / "plots" / name).read_bytes()[:4] == b"\x89PNG"
    read_reports(run / "eval" / "step-1", 3, 4, [1, 4])  # each evaluation's reports, in the run folder
    _, step_summary, _ = read_reports(run / "eval" / "step-2", 3, 4, [1, 4])
    assert step_summary["step"] == 2 and step_summary["sampling"]["temperature"] == 0.7
    # `--model RUN` evaluates the newest complete checkpoint; the reports land in the run's eval/ folder
    rlvr("eval", "--model", str(run), "--task", str(math_task), "--n", "2", "--max-new-tokens", "8",
         "--threads", "1", "--no-progress", cwd=tmp_path)
    _, summary, _ = read_reports(run / "eval" / "step-2-my_math-test", 3, 2, [1, 2])
    assert summary["model_path"] == str(run / "checkpoints" / "step-2")


def test_eval_errors_are_actionable(tiny_model_dir, tmp_path):
    env = {**ENV, "HF_HOME": str(tmp_path / "hf"), "HF_DATASETS_CACHE": str(tmp_path / "hf" / "datasets")}
    proc = rlvr("eval", "--model", str(tiny_model_dir), "--task", "gsm8k", "--n", "2", check=False, env=env)
    assert proc.returncode == 2
    assert "HF_DATASETS_OFFLINE=1" in proc.stderr and "data_files" in proc.stderr and "Traceback" not in proc.stderr
    proc = rlvr("eval", "--model", str(tiny_model_dir), "--task", "arithmetic", "--n", "4", "--k", "1,8",
                check=False)
    assert proc.returncode == 2 and "--k" in proc.stderr and "n=4" in proc.stderr
    proc = rlvr("eval", "--model", str(tiny_model_dir), "--task", "humaneval", "--split", "train", check=False)
    assert proc.returncode == 2 and "no split 'train'" in proc.stderr


@pytest.mark.vllm
def test_eval_with_the_vllm_engine(tiny_model_dir, tmp_path):
    from grpo.engines.base import vllm_available

    if not vllm_available():
        pytest.skip("vLLM is not installed")
    out = tmp_path / "vllm"
    rlvr("eval", "--model", str(tiny_model_dir), "--task", "arithmetic", "--limit", "3", "--n", "4",
         "--max-new-tokens", "8", "--engine", "vllm", "--output", str(out), "--no-progress",
         env={**ENV, "OMP_NUM_THREADS": "2"})
    _, summary, _ = read_reports(out, 3, 4, [1, 4])
    assert summary["engine"] == "vllm"
