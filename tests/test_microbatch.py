"""Micro-batches cut by rows and by an activation-memory budget (optim.micro_batch_memory_gb): the plan,
the estimate it uses, and a GRPO update that is the same however the batch is cut."""

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, Qwen2Config

from grpo.config import TrainConfig, load_config
from grpo.microbatch import activation_bytes_per_position, plan_micro_batches
from grpo.trainer import policy_update
from test_trainer_parts import _rollout


def test_rows_cap_alone():
    prompts, completions = [[1, 2]] * 5, [[3]] * 5
    assert plan_micro_batches(prompts, completions, 2, None) == [[0, 1], [2, 3], [4]]


def test_positions_budget_counts_each_prompt_once_per_micro_batch():
    prompts = [[1] * 10, [1] * 10, [2] * 10, [2] * 10]
    completions = [[5] * 4] * 4
    # prompt 10 + 4, then 4 (shared prompt) = 18; the next row would add 10 + 4 > 20
    assert plan_micro_batches(prompts, completions, 64, 20) == [[0, 1], [2, 3]]
    assert plan_micro_batches(prompts, completions, 64, 36) == [[0, 1, 2, 3]]
    # a row over the budget on its own still runs, alone
    assert plan_micro_batches([[1] * 50, [2]], [[3], [4]], 64, 20) == [[0], [1]]


def test_activation_estimate_follows_the_model_shape():
    small = AutoModelForCausalLM.from_config(Qwen2Config(vocab_size=512, hidden_size=64, intermediate_size=256,
                                                         num_hidden_layers=2, num_attention_heads=4,
                                                         num_key_value_heads=2))
    deep = AutoModelForCausalLM.from_config(Qwen2Config(vocab_size=512, hidden_size=64, intermediate_size=256,
                                                        num_hidden_layers=8, num_attention_heads=4,
                                                        num_key_value_heads=2))
    per_layer = (8 * 64 + 4 * 256) * 4
    assert activation_bytes_per_position(small) == 2 * per_layer + 3 * 512 * 4
    assert activation_bytes_per_position(deep) == 8 * per_layer + 3 * 512 * 4
    assert activation_bytes_per_position(deep, gradient_checkpointing=True) < activation_bytes_per_position(deep)
    assert activation_bytes_per_position(deep.to(torch.bfloat16)) < activation_bytes_per_position(deep.float())
    assert activation_bytes_per_position(torch.nn.Linear(2, 2)) is None


def test_a_memory_budget_splits_the_update_and_learns_the_same(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    batch = _rollout(tokenizer)
    advantages = torch.tensor([1.0, -1.0, 0.5, -0.5, 2.0, -2.0])
    out = {}
    for budget in ("0", "0.00002"):  # 0: one micro-batch of 6 rows; ~21 kB: a few rows each
        cfg = load_config(TrainConfig, None, ["optim.lr=1e-2", "optim.micro_batch_size=64", "algo.tis=false",
                                              f"optim.micro_batch_memory_gb={budget}"])
        model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
        calls = []
        model.register_forward_pre_hook(lambda *_: calls.append(1))
        optimizer = torch.optim.SGD(model.parameters(), lr=cfg.optim.lr)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: 1.0)
        metrics = policy_update(model, None, batch, advantages, torch.ones(6), cfg, tokenizer.pad_token_id,
                                optimizer, scheduler)
        out[budget] = (len(calls), [p.detach().clone() for p in model.parameters()], metrics)
    (n_whole, whole, m_whole), (n_split, split, m_split) = out["0"], out["0.00002"]
    assert n_whole == 1 and n_split > 2
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(whole, split))
    for key in ("optim/grad_norm", "loss/entropy", "loss/ratio_mean"):
        assert abs(m_whole[key] - m_split[key]) < 1e-5, key
