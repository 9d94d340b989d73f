"""rlvr's own decode loop for Llama-family models (grpo/engines/hf_decode.py) against Hugging Face ``generate``:
the same tokens and log-probs under the same seed, and ``generate`` wherever the loop does not apply."""

from collections import Counter

import pytest
import torch
from transformers import (AutoTokenizer, GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, Qwen2Config,
                          Qwen2ForCausalLM)

from grpo.attention import use_cpu_gqa_attention
from grpo.engines.base import SamplingParams
from grpo.engines.hf import HFEngine
from grpo.engines.hf_decode import unsupported_reason
from grpo.precision import compute_autocast, use_compute_dtype


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


def _qwen2(tokenizer, **overrides):
    config = dict(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                  eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True)
    config.update(overrides)
    torch.manual_seed(0)
    return Qwen2ForCausalLM(Qwen2Config(**config)).eval()


def _llama(tokenizer, **overrides):
    """No biases, untied head, Llama 3's rotary scaling, a head_dim that is not hidden / heads."""
    config = dict(vocab_size=len(tokenizer), hidden_size=48, intermediate_size=80, num_hidden_layers=3,
                  num_attention_heads=4, num_key_value_heads=1, head_dim=16, max_position_embeddings=256,
                  rope_parameters={"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0,
                                   "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                   "original_max_position_embeddings": 32},
                  eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False)
    config.update(overrides)
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(**config)).eval()


def _llama_dynamic(tokenizer):
    """Dynamic NTK rotary scaling: its angles change with the length seen so far (left to generate)."""
    return _llama(tokenizer, max_position_embeddings=24,
                  rope_parameters={"rope_type": "dynamic", "rope_theta": 10000.0, "factor": 2.0})


PROMPTS = ("Question: What is 12 + 30?\nAnswer:", "Q: 7?", "1", "Question: a much longer prompt, 4 + 4?\nAnswer:")


def _both(model, tokenizer, sampling, n=4, seed=0, **generate_kwargs):
    """(own loop, generate) completions of PROMPTS from the same RNG state."""
    prompts = [tokenizer(t).input_ids for t in PROMPTS]
    outs = []
    for decoder in ("auto", "generate"):
        engine = HFEngine(model, tokenizer, batch_size=64, decoder=decoder)
        assert engine.own_decoding() == (decoder == "auto")
        torch.manual_seed(seed)
        outs.append(engine.generate(prompts, n, sampling, **generate_kwargs))
    return outs


def _assert_same(own, hf, atol=1e-5):
    assert own.token_ids == hf.token_ids
    assert own.finish_reason == hf.finish_reason
    assert own.text == hf.text
    for a, b in zip(own.logprobs, hf.logprobs):
        assert torch.allclose(torch.tensor(a), torch.tensor(b), atol=atol), (a, b)


@pytest.mark.parametrize("build", [_qwen2, _llama], ids=["qwen2-gqa-bias", "llama3-rope-mqa"])
@pytest.mark.parametrize("sampling", [
    SamplingParams(temperature=1.0, max_new_tokens=24),
    SamplingParams(temperature=0.7, top_k=20, top_p=0.9, max_new_tokens=24),
    SamplingParams(temperature=0.0, max_new_tokens=16),
], ids=["t1", "t0.7-topk-topp", "greedy"])
@pytest.mark.parametrize("fuse", [True, False], ids=["fused", "separate"])
def test_same_samples_as_generate(tokenizer, build, sampling, fuse, monkeypatch):
    """Projections concatenated (models up to FUSE_MAX_PARAMS) or kept separate (larger ones)."""
    from grpo.engines import hf_decode

    monkeypatch.setattr(hf_decode, "FUSE_MAX_PARAMS", 10**12 if fuse else 0)
    model = build(tokenizer)
    own, hf = _both(model, tokenizer, sampling)
    assert len(own) == 16
    _assert_same(own, hf)


def test_same_samples_with_the_cpu_gqa_attention_and_stop_strings(tokenizer):
    model = _qwen2(tokenizer)
    assert use_cpu_gqa_attention(model)
    sampling = SamplingParams(temperature=1.0, max_new_tokens=30, stop=("+", "?"))
    own, hf = _both(model, tokenizer, sampling, seed=3)
    assert any(r == "stop" for r in own.finish_reason)
    _assert_same(own, hf)


@pytest.mark.parametrize("seeds", [None, [5, 6, 7, 8]], ids=["stream", "per_prompt"])
@pytest.mark.parametrize("temperature", [1.0, 0.0], ids=["t1", "greedy"])
def test_same_samples_when_rows_end_early(tokenizer, monkeypatch, seeds, temperature):
    """Rows that end early (EOS made likely) leave the decoded batch once a quarter of it has ended
    (generate keeps decoding them as padding): the other rows still draw the random numbers they would
    have, so the samples are generate's, from torch's RNG or from per-prompt seeds."""
    from grpo.engines import hf_decode

    model = _qwen2(tokenizer, tie_word_embeddings=False)
    with torch.no_grad():
        model.lm_head.weight.mul_(50)  # peaked scores: some tokens come up often
    sampling = SamplingParams(temperature=1.0, max_new_tokens=40)
    first, _ = _both(model, tokenizer, sampling, seeds=[5, 6, 7, 8])
    common = Counter(t for ids in first.token_ids for t in ids).most_common(1)[0][0]
    eos = tokenizer.eos_token_id
    with torch.no_grad():  # EOS takes the place of the model's favourite token, so rows end within the budget
        rows = model.lm_head.weight[[common, eos]].clone()
        model.lm_head.weight[[eos, common]] = rows
    batches = []
    forward = hf_decode._Model.forward

    def recording(self, ids, *args):
        batches.append(ids.shape[0])
        return forward(self, ids, *args)

    monkeypatch.setattr(hf_decode._Model, "forward", recording)
    sampling = SamplingParams(temperature=temperature, max_new_tokens=40)
    own, hf = _both(model, tokenizer, sampling, n=4 if temperature else 1, seeds=seeds)
    if temperature:
        assert any(r == "stop" for r in own.finish_reason) and any(r == "length" for r in own.finish_reason)
    else:
        assert any(r == "stop" for r in own.finish_reason)
    rows = len(own)
    assert min(batches[1:]) < rows, batches  # finished rows were dropped
    _assert_same(own, hf)


@pytest.mark.parametrize("how", ["compute", "weights"])
def test_bf16_agrees_to_its_rounding(tokenizer, how):
    """Under the policy's bfloat16 compute (autocast), or with bfloat16 weights, both loops cast the same
    way: the first greedy tokens agree and their log-probs to bfloat16's rounding."""
    model = _llama(tokenizer)
    if how == "compute":
        use_compute_dtype(model, torch.bfloat16)
    else:
        model.to(torch.bfloat16)
    prompts = [tokenizer(t).input_ids for t in PROMPTS]
    outs = [HFEngine(model, tokenizer, decoder=d).generate(prompts, 1, SamplingParams(temperature=0.0, max_new_tokens=12))
            for d in ("auto", "generate")]
    first = [ids[0] for ids in outs[0].token_ids]
    assert first == [ids[0] for ids in outs[1].token_ids]
    for a, b in zip(outs[0].logprobs, outs[1].logprobs):
        assert abs(a[0] - b[0]) < 0.05


def test_generate_where_the_loop_does_not_apply(tokenizer):
    assert unsupported_reason(_qwen2(tokenizer)) is None
    assert unsupported_reason(_llama(tokenizer)) is None
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=1, n_head=2))
    assert "GPT2LMHeadModel" in unsupported_reason(gpt2)
    sliding = _qwen2(tokenizer, use_sliding_window=True, sliding_window=8, max_window_layers=0)
    assert "sliding" in unsupported_reason(sliding)
    assert "mlp" in unsupported_reason(_llama(tokenizer, mlp_bias=True)).lower()
    assert "silu" in unsupported_reason(_llama(tokenizer, hidden_act="gelu"))
    assert "dynamic" in unsupported_reason(_llama_dynamic(tokenizer))
    peft = pytest.importorskip("peft")
    lora = peft.get_peft_model(_qwen2(tokenizer), peft.LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
    assert unsupported_reason(lora) is not None
    assert not HFEngine(lora, tokenizer).own_decoding()
    # the engine still samples these, through generate
    out = HFEngine(gpt2, tokenizer).generate([tokenizer("1 + 1").input_ids], 2, SamplingParams(max_new_tokens=4))
    assert len(out) == 2


def test_decoder_is_checked(tokenizer):
    with pytest.raises(ValueError, match="decoder 'fast'.*'generate'"):
        HFEngine(_qwen2(tokenizer), tokenizer, decoder="fast")


def test_compute_autocast_is_what_the_engine_wraps(tokenizer):
    """The loop reads the autocast state at its start: inside compute_autocast its matrices are bfloat16."""
    from grpo.engines.hf_decode import _Model

    model = _llama(tokenizer)
    use_compute_dtype(model, torch.bfloat16)
    with compute_autocast(model):
        assert _Model(model).layers[0].qkv[0].dtype == torch.bfloat16
    assert _Model(model).layers[0].qkv[0].dtype == torch.float32
    assert len(_Model(model).layers[0].qkv) == 1 and len(_Model(model, fuse=False).layers[0].qkv) == 3


def test_rotary_angles_come_from_a_table(tokenizer):
    """The table holds the very numbers the model's rotary module gives."""
    from grpo.engines.hf_decode import _Model

    model = _llama(tokenizer)
    net = _Model(model)
    net.tabulate_angles(64, torch.device("cpu"))
    positions = torch.tensor([[0, 5, 63], [1, 1, 2]])
    probe = torch.zeros(2, 3, 48)
    cos, sin = net._angles(positions)
    want_cos, want_sin = model.model.rotary_emb(probe, positions)
    assert torch.equal(cos[:, 0], want_cos) and torch.equal(sin[:, 0], want_sin)


def test_a_prompt_sampled_n_times_is_read_once(tokenizer, monkeypatch):
    """The prompt pass runs on the distinct prompts (4 here, not 4 x 8 rows); the samples are still those
    of generate, which reads every row. With n = 1 there is nothing to share."""
    from grpo.engines import hf_decode

    model = _qwen2(tokenizer)
    widths = []
    forward = hf_decode._Model.forward

    def recording(self, ids, *args):
        widths.append(ids.shape)
        return forward(self, ids, *args)

    monkeypatch.setattr(hf_decode._Model, "forward", recording)
    sampling = SamplingParams(temperature=1.0, max_new_tokens=12)
    own, hf = _both(model, tokenizer, sampling, n=8, seed=4)
    _assert_same(own, hf)
    width = max(len(tokenizer(t).input_ids) for t in PROMPTS)
    assert widths[0] == (len(PROMPTS), width) and widths[1] == (len(PROMPTS) * 8, 1)
    widths.clear()
    own, hf = _both(model, tokenizer, sampling, n=1, seed=4)
    _assert_same(own, hf)
    assert widths[0] == (len(PROMPTS), width)


def test_rollout_config_picks_the_decoder(tiny_model_dir, tokenizer):
    """rollout.hf_decoder reaches the engine the factory builds; a typo is a config error naming the field."""
    from grpo.config import ConfigError, ModelConfig, RolloutConfig, TrainConfig
    from grpo.engines.factory import build_engine

    model_cfg = ModelConfig(path=str(tiny_model_dir))
    for decoder, own in (("auto", True), ("generate", False)):
        engine = build_engine(RolloutConfig(engine="hf", hf_decoder=decoder), model_cfg, tokenizer)
        assert engine.own_decoding() is own
    with pytest.raises(ConfigError, match="hf_decoder"):
        from grpo.config import load_config

        load_config(TrainConfig, None, ["rollout.hf_decoder=fast"])
