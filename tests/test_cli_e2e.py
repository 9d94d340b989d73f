"""End-to-end runs of the real ``rlvr`` command line on a tiny model, with tiny budgets."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

pytestmark = pytest.mark.slow

TINY = [
    "--set", "algo.prompts_per_step=2", "--set", "algo.group_size=4", "--set", "rollout.max_new_tokens=12",
    "--set", "optim.lr=1e-3", "--set", "optim.micro_batch_size=3", "--set", "threads=1", "--no-progress",
    "--set", "rollout.engine=hf",  # the vLLM engine has tests of its own (test_vllm.py)
    "--set", "verifier=plugin_verifiers:digit_share",  # a plugin by module:function, with a signal for a random policy
]


ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
       "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}


def rlvr(*args, check=True, **kwargs):
    proc = subprocess.run([sys.executable, "-m", "grpo.cli", *args], capture_output=True, text=True, env=ENV,
                          timeout=600, **kwargs)
    if check and proc.returncode != 0:
        raise AssertionError(f"rlvr {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_train_smoke_run_folder_is_well_formed(tiny_model_dir, tmp_path):
    run = tmp_path / "run"
    rlvr("train", "--set", f"model.path={tiny_model_dir}", "--set", "steps=3", "--set", "save_every=2",
         "--set", "eval.problems=3", "--set", "eval.every=2", "--set", "eval.n=2", "--set", "eval.ks=[1,2]",
         "--set", "eval.max_new_tokens=8", "--set", "algo.kl_coef=0.05", "--output-dir", str(run), *TINY)
    # parameters changed
    before, after = weights(tiny_model_dir), weights(run / "checkpoints" / "step-3")
    assert before.keys() == after.keys()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    # the run folder
    assert (run / "config.yaml").read_text().count("kl_coef: 0.05") == 1
    metrics = read_jsonl(run / "metrics.jsonl")
    assert [m["step"] for m in metrics] == [1, 2, 3]
    for key in ["reward/mean", "reward/std", "reward/accuracy", "reward/zero_variance_groups",
                "completion/truncation_rate", "completion/length_mean", "loss/kl", "loss/entropy",
                "loss/clip_frac", "optim/grad_norm", "optim/lr", "time/generate", "time/verify", "time/update"]:
        assert all(key in m for m in metrics), key
    for m in metrics:  # the update's parts (kl_coef > 0: the reference runs too), each within the whole
        parts = [m[f"time/{k}"] for k in ("reference", "logprobs", "backward", "optimizer")]
        assert all(t > 0 for t in parts) and sum(parts) <= m["time/update"], m
    assert "eval/pass@1" in metrics[1] and "eval/pass@1" in metrics[2] and "eval/pass@1" not in metrics[0]
    samples = read_jsonl(run / "samples.jsonl")
    assert samples and {"prompt", "completion", "reward", "status", "advantage"} <= samples[0].keys()
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    for name in ["reward.png", "heldout_pass_at_1.png", "kl.png", "length.png"]:
        assert (run / "plots" / name).read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-2", "step-3"]
    assert (run / "checkpoints" / "step-3" / "trainer_state.pt").is_file()
    # a second run into the same folder without --resume is refused, and loses nothing
    proc = rlvr("train", "--set", f"model.path={tiny_model_dir}", "--output-dir", str(run), *TINY, check=False)
    assert proc.returncode == 2 and "--resume" in proc.stderr
    assert [m["step"] for m in read_jsonl(run / "metrics.jsonl")] == [1, 2, 3]


def test_resume_after_kill_continues_at_the_right_step(tiny_model_dir, tmp_path):
    args = ["--set", f"model.path={tiny_model_dir}", "--set", "steps=8", "--set", "save_every=2",
            "--set", "keep_checkpoints=8", *TINY]
    straight = tmp_path / "straight"
    rlvr("train", "--output-dir", str(straight), *args)

    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "grpo.cli", "train", "--output-dir", str(killed), *args],
                            env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (killed / "checkpoints" / "step-2" / "COMPLETE").exists():
        assert proc.poll() is None, "the run ended before its first checkpoint"
        assert time.time() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = sorted(int(p.name.split("-")[1]) for p in (killed / "checkpoints").glob("step-*")
                  if (p / "COMPLETE").exists())
    assert done and done[-1] < 8, "the kill came too late to test resume"

    rlvr("train", "--output-dir", str(killed), "--resume", *args)
    steps = [m["step"] for m in read_jsonl(killed / "metrics.jsonl")]
    assert steps == list(range(1, 9))  # every step once: nothing lost, nothing repeated
    # the resumed run is the run that was never interrupted: same samples, same final weights
    assert read_jsonl(killed / "samples.jsonl") == read_jsonl(straight / "samples.jsonl")
    a, b = weights(straight / "checkpoints" / "step-8"), weights(killed / "checkpoints" / "step-8")
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6), key


def test_resume_without_checkpoint_and_bad_config_fail_clearly(tiny_model_dir, tmp_path):
    proc = rlvr("train", "--output-dir", str(tmp_path / "empty"), "--resume", *TINY, check=False)
    assert proc.returncode == 2 and "no complete checkpoint" in proc.stderr
    proc = rlvr("train", "--set", "algo.group_size=1", check=False)
    assert proc.returncode == 2 and "algo.group_size" in proc.stderr
    proc = rlvr("train", "--set", f"model.path={tmp_path / 'missing'}", "--output-dir", str(tmp_path / "r"),
                *TINY, check=False)
    assert proc.returncode == 2 and "model.path" in proc.stderr


def test_sft_smoke(tiny_model_dir, tmp_path):
    run = tmp_path / "sft"
    proc = rlvr("sft", "--set", f"model.path={tiny_model_dir}", "--set", "steps=3", "--set", "batch_size=4",
                "--set", "optim.micro_batch_size=2", "--output-dir", str(run), "--no-progress")
    assert "step-3" in proc.stdout
    assert any(not torch.equal(a, b) for a, b in zip(weights(tiny_model_dir).values(),
                                                      weights(run / "checkpoints" / "step-3").values()))
    assert [m["step"] for m in read_jsonl(run / "metrics.jsonl")] == [1, 2, 3]


def test_help_lists_commands():
    out = rlvr("--help").stdout
    for command in ("train", "sft", "demo"):
        assert command in out
    assert "--resume" in rlvr("train", "--help").stdout


def test_demo_smoke_reports_one_figure_per_model(tmp_path):
    """The demo with tiny budgets: the GRPO figure is the run's own final evaluation (one pass@1 per model)."""
    out = tmp_path / "demo"
    rlvr("demo", "--output-dir", str(out), "--heldout", "8", "--seed", "3", "--set", "steps=2",
         "--set", "algo.prompts_per_step=2", "--sft-set", "steps=2", "--no-progress")
    summary = json.loads((out / "summary.json").read_text())
    final = json.loads((out / "grpo" / "eval" / "step-2" / "summary.json").read_text())
    assert summary["grpo_pass_at_1"] == final["metrics"]["pass@1"]["value"] and final["n_problems"] == 8
    assert summary["seed"] == 3 and summary["n_heldout"] == 8
    for key in ("boxed_share", "step_by_step_share", "boxed_accuracy"):
        assert 0 <= summary[f"sft_{key}"] <= 1 and 0 <= summary[f"grpo_{key}"] <= 1
    assert (out / "plots" / "pass_at_k.png").is_file()
