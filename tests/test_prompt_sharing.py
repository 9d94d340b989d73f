"""Prompt sharing in ``completion_logprobs``: each distinct prompt of a micro-batch runs once and its rows
continue from its KV cache. Values and gradients must equal those of one forward per row, for the
architectures it is enabled for, with and without LoRA; elsewhere the plain path runs."""

import pytest
import torch
from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config

from grpo.config import LoraConfig
from grpo.lora import AdaptersDisabled, apply_lora
from grpo.logprobs import completion_logprobs, pack

PAD = 0


def _model(kind: str, attn: str = "sdpa"):
    torch.manual_seed(0)
    shape = dict(vocab_size=96, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, max_position_embeddings=128, tie_word_embeddings=kind == "qwen2")
    config = (LlamaConfig if kind == "llama" else Qwen2Config)(**shape)
    config._attn_implementation = attn
    return AutoModelForCausalLM.from_config(config).float().train()


def _batch():
    """Four prompts of different lengths (left padding differs), repeated 3, 2, 1 and 2 times, completions
    of different lengths (right padding), rows not grouped together; one prompt holds the pad id, one is
    a single token (its row of the prompts' pass is all padding)."""
    g = torch.Generator().manual_seed(1)
    prompts = [[5, 17, 33, 2, 9, 40], [PAD, 7, 8], [11, 12, 13, 14], [42]]
    owner = [0, 1, 0, 3, 2, 1, 0, 3]
    completions = [torch.randint(1, 96, (int(n),), generator=g).tolist() for n in [5, 3, 7, 2, 1, 6, 4, 3]]
    return pack([prompts[o] for o in owner], completions, PAD)


class Forwards:
    """Counts the model's forward calls."""

    def __init__(self, module):
        self.count = 0
        module.register_forward_pre_hook(lambda *_: setattr(self, "count", self.count + 1))


def _grads(model) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _both_ways(model, batch, temperature=0.8):
    out = {}
    for share in (False, True):
        model.zero_grad(set_to_none=True)
        lp, ent = completion_logprobs(model, batch, temperature, with_entropy=True, share_prompts=share)
        weights = torch.linspace(-1, 1, lp.numel()).view_as(lp)
        ((lp * weights) * batch.completion_mask).sum().backward()
        out[share] = (lp.detach(), ent, _grads(model))
    return out


@pytest.mark.parametrize("kind, attn", [("llama", "sdpa"), ("qwen2", "sdpa"), ("qwen2", "eager")])
def test_shared_prompts_give_the_same_logprobs_entropy_and_gradients(kind, attn):
    model, batch = _model(kind, attn), _batch()
    calls = Forwards(model)
    out = _both_ways(model, batch)
    assert calls.count == 1 + 2  # one pass without sharing; the prompts' pass and the continuation with it
    (lp0, ent0, g0), (lp1, ent1, g1) = out[False], out[True]
    m = batch.completion_mask.bool()
    torch.testing.assert_close(lp1[m], lp0[m], atol=2e-5, rtol=1e-5)
    torch.testing.assert_close(ent1[m], ent0[m], atol=2e-5, rtol=1e-5)
    assert g0.keys() == g1.keys() and len(g0) > 0
    for name in g0:
        torch.testing.assert_close(g1[name], g0[name], atol=2e-5, rtol=1e-4, msg=name)


def test_shared_prompts_with_lora_and_its_reference_policy():
    model = apply_lora(_model("llama"), LoraConfig(r=4, alpha=8, dropout=0.0, target_modules=("q_proj", "v_proj")), "tiny")
    for module in model.modules():  # LoRA's B starts at zero: make the adapters count
        if hasattr(module, "lora_B"):
            torch.nn.init.normal_(module.lora_B["default"].weight, std=0.1)
    batch = _batch()
    out = _both_ways(model, batch)
    m = batch.completion_mask.bool()
    torch.testing.assert_close(out[True][0][m], out[False][0][m], atol=2e-5, rtol=1e-5)
    assert any("lora_" in n for n in out[True][2])
    for name in out[False][2]:
        torch.testing.assert_close(out[True][2][name], out[False][2][name], atol=2e-5, rtol=1e-4, msg=name)
    ref = AdaptersDisabled(model)
    with torch.no_grad():
        shared = completion_logprobs(ref, batch, 1.0, share_prompts=True)[0]
        plain = completion_logprobs(ref, batch, 1.0, share_prompts=False)[0]
        policy = completion_logprobs(model, batch, 1.0)[0]
    torch.testing.assert_close(shared[m], plain[m], atol=2e-5, rtol=1e-5)
    assert (policy[m] - shared[m]).abs().max() > 1e-3  # the reference really ran without the adapters


def test_plain_path_where_sharing_does_not_apply():
    batch = _batch()
    model = _model("llama")
    calls = Forwards(model)
    model.gradient_checkpointing_enable()  # drops the KV cache in training: one pass
    completion_logprobs(model, batch)
    assert calls.count == 1
    model.gradient_checkpointing_disable()
    distinct = pack([[3, 4], [5, 6, 7]], [[8, 9], [10]], PAD)  # no prompt repeats
    completion_logprobs(model, distinct)
    assert calls.count == 2
    single = pack([[3], [3]], [[8, 9], [10]], PAD)  # a one-token prompt: nothing before its last token
    completion_logprobs(model, single)
    assert calls.count == 3
    model.config.model_type = "gpt_neox"  # an architecture it is not enabled for
    completion_logprobs(model, batch)
    assert calls.count == 4


def test_a_grpo_step_learns_the_same_with_and_without_sharing(tiny_model_dir, tmp_path):
    """One GRPO step (8 samples of each of 2 prompts, a KL term so the reference runs too), trained with
    and without prompt sharing: the same samples, the same metrics, the same weights after the step."""
    import json
    import sys
    from pathlib import Path

    from grpo.config import TrainConfig, load_config
    from grpo.trainer import train

    sys.path.insert(0, str(Path(__file__).parent))  # plugin_verifiers

    weights, metrics = {}, {}
    for share in (True, False):
        run = tmp_path / f"share-{share}"
        train(load_config(TrainConfig, None, [
            f"model.path={tiny_model_dir}", f"output_dir={run}", "steps=1", "save_every=1", "threads=1",
            "algo.prompts_per_step=2", "algo.group_size=8", "rollout.max_new_tokens=12", "rollout.engine=hf",
            "optim.lr=1e-2", "optim.micro_batch_size=16", "algo.kl_coef=0.05", "seed=3",
            "verifier=plugin_verifiers:digit_share",
            f"model.share_prompts={str(share).lower()}"]), show_progress=False)
        metrics[share] = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
        model = AutoModelForCausalLM.from_pretrained(run / "checkpoints" / "step-1")
        weights[share] = {n: p.detach().clone() for n, p in model.named_parameters()}
    assert metrics[True]["completion/length_mean"] == metrics[False]["completion/length_mean"]
    for key in ("loss/policy", "rollout/logprob_diff", "optim/grad_norm"):
        if key in metrics[True]:
            assert metrics[True][key] == pytest.approx(metrics[False][key], rel=1e-4, abs=1e-6), key
    # Adam's first step is about lr * sign(gradient): entries whose gradient is ~0 may flip either way on
    # rounding, so the weights are compared in bulk (the gradients themselves: the tests above)
    start = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    diff = moved = 0.0
    for name, p0 in start.named_parameters():
        diff += (weights[True][name] - weights[False][name]).abs().sum().item()
        moved += (weights[True][name] - p0).abs().sum().item()
    assert moved > 0 and diff <= 1e-3 * moved, (diff, moved)


def test_sharing_and_trimming_stay_on_beside_a_process_group_of_one():
    """vLLM's in-process engine starts a torch.distributed group of one; that is still one process, so the
    log-prob passes keep sharing prompts and trimming padding (they were silently off with vLLM before)."""
    import socket

    import torch.distributed as dist

    assert not dist.is_initialized()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    try:
        model, batch = _model("llama"), _batch()
        calls = Forwards(model)
        completion_logprobs(model, batch)
        assert calls.count == 2  # the prompts' pass and the continuation: shared
    finally:
        dist.destroy_process_group()
