"""grpo.attention: masked grouped-query attention on the CPU without repeating the KV heads, with the
outputs of Hugging Face's sdpa."""

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config

from grpo.attention import NAME, use_cpu_gqa_attention
from grpo.config import ModelConfig
from grpo.models import load_policy
from grpo.tiny_model import train_tokenizer


def _save(tmp_path, kind: str, kv_heads: int):
    tokenizer = train_tokenizer([f"{a} + {b} = {a + b}" for a in range(30) for b in range(30)], vocab_size=96)
    cls = Qwen2Config if kind == "qwen2" else LlamaConfig
    config = cls(vocab_size=96, hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=kv_heads, head_dim=32, max_position_embeddings=128, pad_token_id=0, eos_token_id=1)
    torch.manual_seed(0)
    out = tmp_path / f"{kind}-{kv_heads}"
    AutoModelForCausalLM.from_config(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def _padded_batch():
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(2, 96, (4, 14), generator=g)
    mask = torch.ones_like(ids)
    mask[0, :5] = 0  # left padding, as in every sampled or packed GRPO batch
    mask[2, :2] = 0
    return ids, mask


def _forbid_repeat_kv(monkeypatch):
    import transformers.integrations.sdpa_attention as sdpa

    def repeat_kv(*args, **kwargs):
        raise AssertionError("the KV heads were repeated")

    monkeypatch.setattr(sdpa, "repeat_kv", repeat_kv)


@pytest.mark.parametrize("kind", ["qwen2", "llama"])
def test_masked_gqa_forward_is_sdpa_bit_for_bit_without_repeating_heads(tmp_path, monkeypatch, kind):
    folder = _save(tmp_path, kind, kv_heads=2)
    stock = AutoModelForCausalLM.from_pretrained(folder)
    assert stock.config._attn_implementation == "sdpa"
    ids, mask = _padded_batch()
    expected = stock(input_ids=ids, attention_mask=mask).logits

    model, _ = load_policy(ModelConfig(path=str(folder)))
    assert model.config._attn_implementation == NAME
    _forbid_repeat_kv(monkeypatch)  # what sdpa does with a mask, and this attention does not
    got = model(input_ids=ids, attention_mask=mask).logits
    assert torch.equal(got, expected)


def test_greedy_generation_and_gradients_match_sdpa(tmp_path, monkeypatch):
    folder = _save(tmp_path, "qwen2", kv_heads=2)
    stock = AutoModelForCausalLM.from_pretrained(folder)
    model, _ = load_policy(ModelConfig(path=str(folder)))
    ids, mask = _padded_batch()
    kwargs = dict(attention_mask=mask, max_new_tokens=12, do_sample=False, pad_token_id=0, eos_token_id=None)
    expected = stock.generate(ids, **kwargs)
    stock(input_ids=ids, attention_mask=mask).logits.logsumexp(-1).mean().backward()
    _forbid_repeat_kv(monkeypatch)
    assert torch.equal(model.generate(ids, **kwargs), expected)
    model(input_ids=ids, attention_mask=mask).logits.logsumexp(-1).mean().backward()
    for (name, a), b in zip(stock.named_parameters(), model.parameters()):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-5, atol=1e-6, msg=name)


def test_unmasked_calls_are_sdpa_as_it_is(tmp_path):
    folder = _save(tmp_path, "qwen2", kv_heads=2)
    stock = AutoModelForCausalLM.from_pretrained(folder)
    model, _ = load_policy(ModelConfig(path=str(folder)))
    ids, _ = _padded_batch()
    assert torch.equal(model(input_ids=ids).logits, stock(input_ids=ids).logits)


def test_left_alone_without_grouped_heads_or_with_another_attention(tmp_path):
    plain = _save(tmp_path, "qwen2", kv_heads=4)  # one KV head per head: nothing is repeated
    model, _ = load_policy(ModelConfig(path=str(plain)))
    assert model.config._attn_implementation == "sdpa"

    eager = AutoModelForCausalLM.from_pretrained(_save(tmp_path, "llama", kv_heads=2), attn_implementation="eager")
    assert not use_cpu_gqa_attention(eager)  # a user's choice of attention stays
    assert eager.config._attn_implementation == "eager"


def test_a_saved_model_does_not_record_the_switch(tmp_path):
    model, _ = load_policy(ModelConfig(path=str(_save(tmp_path, "qwen2", kv_heads=2))))
    assert model.config._attn_implementation == NAME
    model.save_pretrained(tmp_path / "saved")
    assert NAME not in (tmp_path / "saved" / "config.json").read_text()
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "saved")  # a plain transformers load elsewhere
    assert reloaded.config._attn_implementation == "sdpa"
    assert "attn" not in "".join(json.loads((tmp_path / "saved" / "config.json").read_text()))


def test_a_lora_policy_and_its_reference_keep_it(tmp_path, monkeypatch):
    from grpo.config import LoraConfig
    from grpo.models import reference_policy

    folder = _save(tmp_path, "qwen2", kv_heads=2)
    stock = AutoModelForCausalLM.from_pretrained(folder)
    ids, mask = _padded_batch()
    expected = stock(input_ids=ids, attention_mask=mask).logits
    cfg = ModelConfig(path=str(folder), lora=LoraConfig(r=4, alpha=8.0))
    model, _ = load_policy(cfg)
    assert model.get_base_model().config._attn_implementation == NAME
    _forbid_repeat_kv(monkeypatch)
    # fresh adapters start at B = 0, so the LoRA policy, and its reference (the adapters off), compute the base model
    assert torch.equal(model(input_ids=ids, attention_mask=mask).logits, expected)
    assert torch.equal(reference_policy(model, cfg)(input_ids=ids, attention_mask=mask).logits, expected)


def test_only_masked_cpu_calls_without_extras_skip_sdpa():
    from grpo.attention import _takes_this_call

    layer = torch.nn.Module()
    layer.num_key_value_groups = 2
    q, mask = torch.zeros(1, 4, 3, 8), torch.ones(1, 1, 3, 3, dtype=torch.bool)
    assert _takes_this_call(layer, q, mask, {})
    assert not _takes_this_call(layer, q.to("meta"), mask, {})  # off the CPU: sdpa as it is (CUDA: math kernel)
    assert not _takes_this_call(layer, q, None, {})  # no mask: sdpa already passes the heads grouped
    assert not _takes_this_call(layer, q, mask, {"position_bias": torch.zeros(1)})
    assert not _takes_this_call(layer, q, mask, {"output_attentions": True})
    layer.num_key_value_groups = 1
    assert not _takes_this_call(layer, q, mask, {})


def test_reward_models_and_critics_score_as_sdpa_without_repeating_heads(tmp_path, monkeypatch):
    """The sequence classifiers of the RLHF path (a reward model to train, a trained one loaded to score, a
    critic) get the same attention: their scores are stock sdpa's bit for bit on a right-padded batch, with
    the KV heads never repeated, and a saved reward model records nothing of it."""
    from transformers import AutoModelForSequenceClassification

    from grpo.critic import inspect_folder, load_critic
    from grpo.reward_model import init_reward_model, load_reward_model

    folder = _save(tmp_path, "qwen2", kv_heads=2)
    ids, mask = _padded_batch()
    ids, mask = ids.flip(1), mask.flip(1)  # right padding, as reward models score
    fresh, _ = init_reward_model(ModelConfig(path=str(folder)))
    assert fresh.config._attn_implementation == NAME
    with torch.no_grad():
        fresh.score.weight.normal_()
    fresh.save_pretrained(tmp_path / "rm")
    assert NAME not in (tmp_path / "rm" / "config.json").read_text()
    stock = AutoModelForSequenceClassification.from_pretrained(tmp_path / "rm")
    assert stock.config._attn_implementation == "sdpa"
    expected = stock(input_ids=ids, attention_mask=mask).logits

    _forbid_repeat_kv(monkeypatch)
    assert torch.equal(fresh(input_ids=ids, attention_mask=mask).logits, expected)
    trained, _ = load_reward_model(str(tmp_path / "rm"))
    assert trained.config._attn_implementation == NAME
    assert torch.equal(trained(input_ids=ids, attention_mask=mask).logits, expected)
    critic, was_fresh = load_critic(inspect_folder(str(tmp_path / "rm"), "ppo.critic"), "ppo.critic")
    assert not was_fresh and critic.config._attn_implementation == NAME
    assert torch.equal(critic(input_ids=ids, attention_mask=mask).logits, expected)
