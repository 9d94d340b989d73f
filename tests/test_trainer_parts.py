import json
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from grpo.config import TrainConfig, load_config
from grpo.trainer import PromptStream, Rollout, policy_update, train
from verifiers import Verdict

sys.path.insert(0, str(Path(__file__).parent))  # plugin_verifiers


def test_prompt_stream_is_a_pure_function_of_position():
    a, b = PromptStream(10, seed=3), PromptStream(10, seed=3)
    first = a.take(0, 25)
    assert sorted(first[:10]) == list(range(10)) and sorted(first[10:20]) == list(range(10))  # whole epochs
    assert b.take(7, 5) == first[7:12]  # resuming mid-stream gives the same prompts
    assert PromptStream(10, seed=4).take(0, 10) != first[:10]


def _rollout(tokenizer, n=6):
    torch.manual_seed(0)
    prompts = [tokenizer(f"Question: What is {i} + 1?\nAnswer:").input_ids for i in range(n)]
    completions = [torch.randint(5, 200, (3 + i,)).tolist() for i in range(n)]
    return Rollout(
        rows=[{}] * n, prompt_ids=prompts, completion_ids=completions,
        sampler_logprobs=[[-1.0] * len(c) for c in completions], texts=[""] * n,
        finish_reason=["stop"] * n, verdicts=[Verdict("correct", 1.0)] * n,
    )


@pytest.mark.parametrize("mode", ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"])
def test_masked_samples_are_as_if_absent(tiny_model_dir, mode):
    """A sample with weight 0 (truncated or unverifiable) changes nothing: same step as without it."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    cfg = load_config(TrainConfig, None, [f"algo.loss_agg_mode={mode}", "optim.micro_batch_size=2",
                                          "optim.max_grad_norm=0", "optim.lr=1e-2"])
    batch = _rollout(tokenizer)
    advantages = torch.tensor([1.0, -1.0, 0.5, -0.5, 2.0, -2.0])
    weight = torch.tensor([1.0, 1.0, 0.0, 1.0, 1.0, 0.0])
    keep = [0, 1, 3, 4]

    def step(rollout, adv, w):
        model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
        optimizer = torch.optim.SGD(model.parameters(), lr=cfg.optim.lr)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: 1.0)
        policy_update(model, None, rollout, adv, w, cfg, tokenizer.pad_token_id, optimizer, scheduler)
        return [p.detach().clone() for p in model.parameters()]

    masked = step(batch, advantages, weight)
    absent = step(batch.take(keep), advantages[keep], torch.ones(len(keep)))
    unmasked = step(batch, advantages, torch.ones(6))
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(masked, absent))
    assert not all(torch.allclose(a, b, atol=1e-6) for a, b in zip(masked, unmasked))


def _train(tiny_model_dir, tmp_path, *overrides):
    cfg = load_config(TrainConfig, None, [
        f"model.path={tiny_model_dir}", f"output_dir={tmp_path / 'run'}", "steps=2", "save_every=5",
        "algo.prompts_per_step=4", "algo.group_size=4", "rollout.max_new_tokens=8", "threads=1", "rollout.engine=hf",
        "verifier=plugin_verifiers:odd_answers_only", *overrides])
    train(cfg, show_progress=False)
    return [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]


def test_dynamic_sampling_fills_the_batch_with_informative_groups(tiny_model_dir, tmp_path):
    plain = _train(tiny_model_dir, tmp_path / "plain")
    assert all(m["batch/sampling_rounds"] == 1 and m["batch/groups"] == 4 for m in plain)
    assert any(m["reward/zero_variance_groups"] > 0 for m in plain)  # even answers give flat groups
    dynamic = _train(tiny_model_dir, tmp_path / "dyn", "algo.dynamic_sampling=true", "algo.max_sampling_rounds=8")
    assert any(m["batch/sampling_rounds"] > 1 for m in dynamic)
    assert all(m["batch/groups"] == 4 for m in dynamic)  # refilled up to prompts_per_step
    samples = [json.loads(line) for line in (tmp_path / "dyn" / "run" / "samples.jsonl").read_text().splitlines()]
    assert all(int(s["answer"]) % 2 == 1 for s in samples)  # only informative (odd-answer) groups were kept
    capped = _train(tiny_model_dir, tmp_path / "cap", "algo.dynamic_sampling=true", "algo.max_sampling_rounds=1")
    assert all(m["batch/sampling_rounds"] == 1 and m["batch/groups"] <= 4 for m in capped)


def test_num_iterations_reuse_the_sampler_logprobs(tiny_model_dir):
    """num_iterations=2 is two optimizer steps on one batch, both against the sampler's old logprobs."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    batch = _rollout(tokenizer)
    advantages = torch.tensor([1.0, -1.0, 0.5, -0.5, 2.0, -2.0])

    def run(iterations, calls):
        cfg = load_config(TrainConfig, None, [f"algo.num_iterations={iterations}", "optim.lr=1e-2",
                                              "optim.micro_batch_size=4", "algo.clip_eps_high=0.28",
                                              "algo.tis=false"])  # TIS would recompute pi_old each call
        model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
        optimizer = torch.optim.SGD(model.parameters(), lr=cfg.optim.lr)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: 1.0)
        for _ in range(calls):
            metrics = policy_update(model, None, batch, advantages, torch.ones(6), cfg, tokenizer.pad_token_id,
                                    optimizer, scheduler)
        return [p.detach().clone() for p in model.parameters()], metrics

    twice, metrics = run(2, 1)
    once_twice, _ = run(1, 2)
    once, _ = run(1, 1)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(twice, once_twice))
    assert not all(torch.allclose(a, b, atol=1e-6) for a, b in zip(twice, once))
    assert {"loss/clip_frac", "loss/entropy", "loss/ratio_mean", "optim/grad_norm"} <= metrics.keys()


def test_trainer_applies_the_reward_config(tiny_model_dir, tmp_path):
    """A weighted combination, a reward mapping and DAPO's overlong punishment all reach the samples."""
    _train(tiny_model_dir, tmp_path, "verifier=null", "log_samples=16", "rollout.max_new_tokens=8",
           "reward.verifiers={plugin_verifiers:odd_answers_only: 1.0, think_format: 0.5}",
           "reward.incorrect=-1.0", "reward.overlong_buffer_len=4")
    samples = [json.loads(line) for line in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 32
    for s in samples:
        if int(s["answer"]) % 2 == 0:  # odd_answers_only says incorrect, reward mapped to -1 (+ punishment)
            assert s["status"] == "incorrect" and s["reward"] <= -1.0
        if s["finish_reason"] == "length":  # 8 tokens of 8: the full punishment
            assert "overlong -1.000" in s["reason"]
    assert any(s["finish_reason"] == "length" for s in samples)


def test_a_nan_loss_stops_before_the_optimizer_step_and_writes_no_checkpoint(tiny_model_dir, tmp_path):
    """A NaN reward (a verifier's bug) makes the loss and gradient NaN: the run stops with exit code 4
    naming the step, before the optimizer step, so no checkpoint of NaN weights is written (without the
    check, step 1 saved one and step 2's sampling failed on NaN scores)."""
    from grpo.runfolder import NAN_EXIT_CODE, RunStopped

    cfg = load_config(TrainConfig, None, [
        f"model.path={tiny_model_dir}", f"output_dir={tmp_path / 'run'}", "steps=3", "save_every=1",
        "algo.prompts_per_step=4", "algo.group_size=4", "rollout.max_new_tokens=8", "threads=1", "rollout.engine=hf",
        "verifier=plugin_verifiers:nan_on_odd_answers"])
    with pytest.raises(RunStopped) as stopped:
        train(cfg, show_progress=False)
    assert stopped.value.exit_code == NAN_EXIT_CODE
    message = str(stopped.value)
    assert "step 1: the gradient norm is nan" in message and "before the optimizer step" in message
    assert "No checkpoint yet" in message and "optim.lr" in message
    checkpoints = tmp_path / "run" / "checkpoints"
    assert not checkpoints.exists() or not any(checkpoints.iterdir())
