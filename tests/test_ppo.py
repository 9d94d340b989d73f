"""PPO (grpo/ppo.py): the real `rlvr ppo` on a tiny model, resume, the critic warm-up, stops on NaN, bad input."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

from grpo.cli import main
from grpo.config import ConfigError, PPOConfig, load_config
from grpo.engines.base import vllm_available
from grpo.ppo import train_ppo
from grpo.runfolder import RunStopped
from ppo_support import build_reward_model

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
       "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}

TINY = ["rollout.engine=hf", "rollout.max_new_tokens=10", "algo.prompts_per_step=6", "algo.mini_batch_size=3",
        "algo.ppo_epochs=2", "optim.lr=1e-3", "critic.optim.lr=1e-3", "optim.micro_batch_size=2",
        "critic.optim.micro_batch_size=2", "threads=1", "verifier=plugin_verifiers:digit_share"]


@pytest.fixture(autouse=True)
def keep_torch_threads():
    """In-process runs set torch's thread count from their config; later tests get theirs back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def reward_model_dir(tiny_model_dir, tmp_path_factory):
    return build_reward_model(tmp_path_factory.mktemp("rm") / "rm", tiny_model_dir, kind="random", seed=1)


def config(run: Path, *overrides: str) -> PPOConfig:
    return load_config(PPOConfig, None, [f"output_dir={run}", *TINY, *overrides])


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def changed(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> bool:
    assert before.keys() == after.keys()
    return any(not torch.equal(before[k], after[k]) for k in before)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow
def test_ppo_cli_smoke_run_folder_is_well_formed(tiny_model_dir, reward_model_dir, tmp_path):
    run = tmp_path / "run"
    args = [f"model.path={tiny_model_dir}", f"reward.reward_model.path={reward_model_dir}",
            "reward.verifier_weight=0.5", "algo.reward_clip=0.05", "algo.missing_eos_penalty=1.0",
            "algo.kl_controller=adaptive", "algo.kl_horizon=100", "steps=3", "save_every=2",
            "eval.problems=3", "eval.every=2", "eval.n=2", "eval.ks=[1,2]", "eval.max_new_tokens=8", *TINY]
    proc = subprocess.run([sys.executable, "-m", "grpo.cli", "ppo", "--output-dir", str(run), "--no-progress",
                           *[a for item in args for a in ("--set", item)]],
                          capture_output=True, text=True, env=ENV, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "critic" in proc.stderr and "backbone and value head loaded" in proc.stderr
    # parameters of the policy and of the critic (started from the reward model) changed
    final = run / "checkpoints" / "step-3"
    assert changed(weights(tiny_model_dir), weights(final))
    assert changed(weights(reward_model_dir), weights(final / "critic"))
    assert isinstance(AutoModelForCausalLM.from_pretrained(final), torch.nn.Module)
    assert AutoModelForSequenceClassification.from_pretrained(final / "critic").config.num_labels == 1
    state = torch.load(final / "trainer_state.pt", weights_only=False)
    assert {"policy", "critic", "policy_scheduler", "critic_scheduler", "kl_controller", "monitor", "rng"} <= state.keys()
    # the run folder
    metrics = read_jsonl(run / "metrics.jsonl")
    assert [m["step"] for m in metrics] == [1, 2, 3]
    for key in ["reward/mean", "reward/accuracy", "reward/rm_mean", "reward/verifier_mean", "reward/total",
                "reward/clip_frac", "kl/sequence", "kl/coef", "critic/explained_variance", "critic/value_clip_frac",
                "loss/policy", "loss/value", "loss/clip_frac", "loss/entropy", "optim/grad_norm", "critic/grad_norm",
                "rollout/logprob_diff", "monitor/proxy", "monitor/gold", "monitor/sqrt_kl", "time/update"]:
        assert all(key in m for m in metrics), key
    # per sample, the reward summed over its tokens is clip(score, -0.05, 0.05) - 1.0 if cut at max_new_tokens
    # (the missing-EOS penalty) - kl_coef * KL (the penalty in the reward); averaged over the batch:
    for m in metrics:
        assert m["reward/clip_frac"] > 0  # scores beyond algo.reward_clip were clipped
        assert abs(m["reward/total"] - (m["reward/kl_penalty"] - m["completion/truncation_rate"])) <= 0.05 + 1e-6
    assert any(m["reward/kl_penalty"] != 0 for m in metrics[1:])
    assert metrics[0]["kl/coef"] == 0.05 and metrics[2]["kl/coef"] != 0.05  # the adaptive controller moved it
    assert metrics[0]["rollout/logprob_diff"] < 1e-4
    assert "eval/pass@1" in metrics[1] and "eval/rm_score" in metrics[1] and "eval/rm_score" in metrics[2]
    assert "eval/pass@1" not in metrics[0]
    samples = read_jsonl(run / "samples.jsonl")
    assert samples and {"prompt", "completion", "score", "rm_score", "kl", "status", "advantage_sum"} <= samples[0].keys()
    best = json.loads((run / "best_gold.json").read_text())
    assert best["step"] in (2, 3) and best["source"] == "held-out pass@1"
    assert (run / "eval" / "step-2" / "summary.json").is_file()
    for name in ["reward.png", "ppo_reward.png", "ppo_kl.png", "ppo_critic.png", "overoptimization.png"]:
        assert (run / "plots" / name).read_bytes()[:4] == b"\x89PNG", name
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-2", "step-3"]
    assert "reward_model:" in (run / "config.yaml").read_text()


@pytest.mark.slow
def test_resume_continues_as_if_never_stopped(tiny_model_dir, tmp_path):
    """Verifier-only reward, critic from the policy, two samples per prompt, adaptive KL: 4 steps straight
    equal 2 steps, then a resume to 4 (policy, critic, optimizers, KL coefficient, data order, RNG)."""
    common = [f"model.path={tiny_model_dir}", "reward.verifier_weight=1.0", "algo.group_size=2",
              "algo.prompts_per_step=3", "algo.kl_controller=adaptive", "algo.kl_horizon=50", "algo.kl_coef=0.2",
              "save_every=2", "keep_checkpoints=4"]
    straight = tmp_path / "straight"
    train_ppo(config(straight, *common, "steps=4"), show_progress=False)
    resumed = tmp_path / "resumed"
    train_ppo(config(resumed, *common, "steps=2"), show_progress=False)
    train_ppo(config(resumed, *common, "steps=4"), resume=True, show_progress=False)

    a, b = read_jsonl(straight / "metrics.jsonl"), read_jsonl(resumed / "metrics.jsonl")
    assert [m["step"] for m in b] == [1, 2, 3, 4]
    for key in ["reward/mean", "kl/coef", "kl/sequence", "loss/value", "loss/policy", "critic/explained_variance"]:
        assert [m[key] for m in a] == pytest.approx([m[key] for m in b], abs=1e-5), key
    assert a[0]["kl/coef"] == 0.2 and a[3]["kl/coef"] != 0.2
    for sub in ("", "critic"):
        x, y = weights(straight / "checkpoints" / "step-4" / sub), weights(resumed / "checkpoints" / "step-4" / sub)
        assert all(torch.allclose(x[k], y[k], atol=1e-6) for k in x), sub
    assert changed(weights(tiny_model_dir), weights(straight / "checkpoints" / "step-4"))
    critic = weights(straight / "checkpoints" / "step-4" / "critic")
    assert torch.count_nonzero(critic["score.weight"]) > 0  # the fresh zero head learned
    assert not (straight / "best_gold.json").exists()  # no reward model: nothing to over-optimize
    assert "monitor/proxy" not in a[0]


def test_critic_warmup_trains_only_the_critic(tiny_model_dir, reward_model_dir, tmp_path):
    run = tmp_path / "run"
    train_ppo(config(run, f"model.path={tiny_model_dir}", f"reward.reward_model.path={reward_model_dir}",
                     "steps=1", "algo.critic_warmup_steps=1"), show_progress=False)
    final = run / "checkpoints" / "step-1"
    assert not changed(weights(tiny_model_dir), weights(final))
    assert changed(weights(reward_model_dir), weights(final / "critic"))
    metrics = read_jsonl(run / "metrics.jsonl")[0]
    assert metrics["ppo/policy_trained"] == 0.0 and "loss/policy" not in metrics and "loss/value" in metrics


def test_a_nan_reward_stops_naming_the_step_and_keeps_the_checkpoint(tiny_model_dir, tmp_path):
    rm = build_reward_model(tmp_path / "rm", tiny_model_dir, kind="random")
    run = tmp_path / "run"
    common = [f"model.path={tiny_model_dir}", f"reward.reward_model.path={rm}", "save_every=1"]
    train_ppo(config(run, *common, "steps=2"), show_progress=False)
    saved = weights(run / "checkpoints" / "step-2")
    build_reward_model(rm, tiny_model_dir, kind="nan")  # the reward model breaks between two sessions
    with pytest.raises(RunStopped) as stopped:
        train_ppo(config(run, *common, "steps=4"), resume=True, show_progress=False)
    message = str(stopped.value)
    assert stopped.value.exit_code == 4
    assert "step 3" in message and "nan" in message and "reward" in message and "step-2" in message
    assert [m["step"] for m in read_jsonl(run / "metrics.jsonl")] == [1, 2]
    assert not (run / "checkpoints" / "step-3").exists()
    after = weights(run / "checkpoints" / "step-2")
    assert all(torch.equal(saved[k], after[k]) for k in saved)


def test_bad_input_stops_before_anything_is_written(tiny_model_dir, reward_model_dir, tmp_path, capsys):
    run = tmp_path / "run"
    # no reward source: refused at load, by the CLI too
    assert main(["ppo", "--output-dir", str(run), "--set", f"model.path={tiny_model_dir}"]) == 2
    err = capsys.readouterr().err
    assert "reward.reward_model.path" in err and "reward.verifier_weight" in err
    # a reward model without its statistics
    no_stats = build_reward_model(tmp_path / "no_stats", tiny_model_dir, stats=False)
    with pytest.raises(ConfigError) as e:
        train_ppo(config(run, f"model.path={tiny_model_dir}", f"reward.reward_model.path={no_stats}"))
    assert "'reward.reward_model.path'" in str(e.value) and "reward_stats.json" in str(e.value)
    assert "rlvr rm" in str(e.value)
    # a reward model of another vocabulary
    other = build_reward_model(tmp_path / "other", tiny_model_dir, vocab_size=1000)
    with pytest.raises(ConfigError) as e:
        train_ppo(config(run, f"model.path={tiny_model_dir}", f"reward.reward_model.path={other}"))
    assert "'reward.reward_model.path'" in str(e.value) and "vocabulary of 1000 tokens" in str(e.value)
    # a critic of another vocabulary
    with pytest.raises(ConfigError) as e:
        train_ppo(config(run, f"model.path={tiny_model_dir}", f"reward.reward_model.path={reward_model_dir}",
                         f"critic.path={other}"))
    assert "'critic.path'" in str(e.value) and "vocabulary" in str(e.value)
    assert not run.exists()


@pytest.mark.vllm
@pytest.mark.slow
@pytest.mark.skipif(not vllm_available(), reason="vLLM is not installed")
def test_ppo_with_vllm_syncs_weights_and_probes(tiny_model_dir, reward_model_dir, tmp_path):
    run = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "grpo.cli", "ppo", "--output-dir", str(run), "--no-progress",
         *[a for item in [f"model.path={tiny_model_dir}", f"reward.reward_model.path={reward_model_dir}", "steps=2",
                          *TINY, "rollout.engine=vllm", "rollout.cpu_kv_cache_gb=0.25", "optim.lr=1e-2"]
           for a in ("--set", item)]],
        capture_output=True, text=True, env=ENV, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = read_jsonl(run / "metrics.jsonl")
    # step 2 samples with the weights synced after step 1's update: the probe agrees
    assert all(m["rollout/logprob_diff"] < 1e-4 for m in metrics), [m["rollout/logprob_diff"] for m in metrics]
    assert changed(weights(tiny_model_dir), weights(run / "checkpoints" / "step-2"))
