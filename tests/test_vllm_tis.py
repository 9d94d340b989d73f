"""Truncated importance sampling (the sampler/trainer mismatch correction) against slow references."""

import math

import pytest
import torch

from grpo.losses import clipped_surrogate, policy_loss, truncated_importance_weights


def tis_reference(trainer: torch.Tensor, sampler: torch.Tensor, cap: float) -> torch.Tensor:
    out = torch.empty_like(trainer)
    for b in range(trainer.shape[0]):
        for t in range(trainer.shape[1]):
            out[b, t] = min(math.exp(float(trainer[b, t]) - float(sampler[b, t])), cap)
    return out


@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (8, 2)])
@pytest.mark.parametrize("cap", [1.0, 2.0, 10.0])
@pytest.mark.parametrize("seed", [0, 1])
def test_tis_weights_match_reference(shape, cap, seed):
    g = torch.Generator().manual_seed(seed)
    sampler = -torch.rand(shape, generator=g) * 5
    trainer = sampler + torch.randn(shape, generator=g)  # mismatches of about one nat, both ways
    weights = truncated_importance_weights(trainer, sampler, cap)
    assert torch.allclose(weights, tis_reference(trainer, sampler, cap), rtol=1e-5, atol=1e-7)
    assert float(weights.max()) <= cap + 1e-6 and float(weights.min()) >= 0


def test_tis_weights_are_one_when_sampler_and_trainer_agree_and_are_constants():
    logprobs = -torch.rand(4, 5, requires_grad=True)
    weights = truncated_importance_weights(logprobs, logprobs.detach().clone(), 2.0)
    assert torch.equal(weights, torch.ones(4, 5)) and not weights.requires_grad


def test_tis_weights_never_overflow_and_reject_bad_args():
    trainer = torch.tensor([[0.0, -1e4, 0.0]])
    sampler = torch.tensor([[-1e4, 0.0, float("-inf")]])
    assert torch.equal(truncated_importance_weights(trainer, sampler, 3.0), torch.tensor([[3.0, 0.0, 3.0]]))
    with pytest.raises(ValueError, match="cap"):
        truncated_importance_weights(trainer, sampler, 0.0)
    with pytest.raises(ValueError, match="shape"):
        truncated_importance_weights(trainer, sampler[:, :2], 2.0)


@pytest.mark.parametrize("mode", ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"])
def test_policy_loss_with_is_weights_weights_the_surrogate_not_the_kl(mode):
    g = torch.Generator().manual_seed(3)
    B, T = 4, 6
    logprobs = (-torch.rand(B, T, generator=g) * 3).requires_grad_()
    old = logprobs.detach() + 0.1 * torch.randn(B, T, generator=g)
    ref = logprobs.detach() + 0.1 * torch.randn(B, T, generator=g)
    advantages = torch.randn(B, generator=g)
    mask = torch.rand(B, T, generator=g) > 0.3
    weights = torch.rand(B, T, generator=g) * 2
    common = dict(clip_eps_low=0.2, clip_eps_high=0.28, loss_agg_mode=mode, kl_coef=0.1, ref_logprobs=ref,
                  norm_constant=float(T))
    loss, _ = policy_loss(logprobs, old, advantages, mask, is_weights=weights, **common)

    # reference: weight the surrogate, add the KL unweighted, aggregate by hand
    surrogate, _, _ = clipped_surrogate(logprobs, old, advantages, clip_eps_low=0.2, clip_eps_high=0.28)
    x = ref - logprobs
    per_token = surrogate * weights + 0.1 * (torch.exp(x) - x - 1)
    m = mask.float()
    if mode == "token-mean":
        expected = (per_token * m).sum() / m.sum()
    elif mode == "seq-mean-token-mean":
        rows = m.sum(1) > 0
        expected = ((per_token * m).sum(1)[rows] / m.sum(1)[rows]).sum() / rows.sum()
    else:
        expected = (per_token * m).sum() / ((m.sum(1) > 0).sum() * T)
    assert torch.allclose(loss, expected, atol=1e-6)
    unweighted, _ = policy_loss(logprobs, old, advantages, mask, is_weights=torch.ones(B, T), **common)
    plain, _ = policy_loss(logprobs, old, advantages, mask, **common)
    assert torch.allclose(unweighted, plain)
    with pytest.raises(ValueError, match="is_weights"):
        policy_loss(logprobs, old, advantages, mask, is_weights=weights[:, :2], **common)


def test_trainer_tis_is_a_no_op_when_the_sampler_agrees_and_weights_tokens_when_it_does_not(tiny_model_dir):
    """In policy_update: exact sampler log-probs (the HF engine's) give weights of 1 and the same step as
    without TIS; a sampler that over-rates its tokens gets them down-weighted and the probe reports the gap."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from grpo.config import TrainConfig, load_config
    from grpo.logprobs import completion_logprobs, pack
    from grpo.trainer import Rollout, policy_update
    from grpo.engines.base import WeightSyncError
    from verifiers import Verdict

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    torch.manual_seed(0)
    prompts = [tokenizer(f"Question: What is {i} + 1?\nAnswer:").input_ids for i in range(4)]
    completions = [torch.randint(5, 200, (3 + i,)).tolist() for i in range(4)]
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    with torch.no_grad():
        exact, _ = completion_logprobs(model, pack(prompts, completions, tokenizer.pad_token_id))
    exact = [exact[i, : len(c)].tolist() for i, c in enumerate(completions)]
    advantages = torch.tensor([1.0, -1.0, 0.5, -0.5])

    def step(sampler_logprobs, *overrides, max_logprob_diff=None):
        cfg = load_config(TrainConfig, None, ["rollout.engine=hf", "optim.lr=1e-2", *overrides])
        batch = Rollout(rows=[{}] * 4, prompt_ids=prompts, completion_ids=completions,
                        sampler_logprobs=sampler_logprobs, texts=[""] * 4, finish_reason=["stop"] * 4,
                        verdicts=[Verdict("correct", 1.0)] * 4)
        m = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
        optimizer = torch.optim.SGD(m.parameters(), lr=cfg.optim.lr)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: 1.0)
        metrics = policy_update(m, None, batch, advantages, torch.ones(4), cfg, tokenizer.pad_token_id,
                                optimizer, scheduler, max_logprob_diff=max_logprob_diff)
        return [p.detach().clone() for p in m.parameters()], metrics

    with_tis, metrics = step(exact, max_logprob_diff=0.1)
    without_tis, _ = step(exact, "algo.tis=false")
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(with_tis, without_tis))
    assert metrics["rollout/logprob_diff"] < 1e-5 and abs(metrics["rollout/tis_weight_mean"] - 1) < 1e-5

    # the sampler rates the 3 tokens of the first completion twice as likely as the trainer does
    optimistic = [[lp + 0.7 for lp in row] if i == 0 else row for i, row in enumerate(exact)]
    shifted, metrics = step(optimistic, "optim.max_grad_norm=0")
    tokens = sum(len(c) for c in completions)  # 18
    assert abs(metrics["rollout/logprob_diff"] - 3 * 0.7 / tokens) < 1e-4
    assert abs(metrics["rollout/tis_weight_mean"] - (3 * math.exp(-0.7) + tokens - 3) / tokens) < 1e-4
    unshifted, _ = step(exact, "optim.max_grad_norm=0")
    assert not all(torch.allclose(a, b, atol=1e-6) for a, b in zip(shifted, unshifted))
    with pytest.raises(WeightSyncError, match=r"0\.1167 nats"):
        step(optimistic, max_logprob_diff=0.1)
