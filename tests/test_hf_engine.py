import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from grpo.engines.hf import HFEngine
from grpo.logprobs import completion_logprobs, pack
from grpo.engines.base import SamplingParams


@pytest.fixture(scope="module")
def engine(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    return HFEngine(model, tokenizer, batch_size=16)


def prompts(engine, texts=("Question: What is 1 + 2?\nAnswer:", "Question: 7?\nAnswer:", "Q")):
    return [engine.tokenizer(t).input_ids for t in texts]  # different lengths: left padding matters


def test_groups_and_shapes(engine):
    torch.manual_seed(0)
    out = engine.generate(prompts(engine), 5, SamplingParams(max_new_tokens=12))
    assert len(out) == 15
    assert out.prompt_index == [0] * 5 + [1] * 5 + [2] * 5
    for ids, lps, reason, text in zip(out.token_ids, out.logprobs, out.finish_reason, out.text):
        assert len(ids) == len(lps) >= 1
        assert all(lp <= 0 for lp in lps)
        if reason == "length":
            assert len(ids) == 12 and engine.tokenizer.eos_token_id not in ids
        else:
            assert ids[-1] == engine.tokenizer.eos_token_id and engine.tokenizer.eos_token_id not in ids[:-1]
        assert text == engine.tokenizer.decode(ids, skip_special_tokens=True)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_sampler_logprobs_match_a_full_forward(engine, temperature):
    """The logprobs recorded while sampling (KV cache, left padding, chunks) equal a fresh forward pass."""
    torch.manual_seed(1)
    p = prompts(engine)
    out = engine.generate(p, 4, SamplingParams(temperature=temperature, max_new_tokens=10))
    batch = pack([p[i] for i in out.prompt_index], out.token_ids, engine.pad_id)
    with torch.no_grad():
        recomputed, _ = completion_logprobs(engine.model, batch, temperature)
    for row, lps in enumerate(out.logprobs):
        assert torch.allclose(recomputed[row, : len(lps)], torch.tensor(lps), atol=1e-4)


def test_top_k_one_is_greedy_and_certain(engine):
    p = prompts(engine)
    greedy = engine.generate(p, 1, SamplingParams(temperature=0.0, max_new_tokens=8))
    torch.manual_seed(2)
    top1 = engine.generate(p, 3, SamplingParams(temperature=1.0, top_k=1, max_new_tokens=8))
    tiny_p = engine.generate(p, 3, SamplingParams(temperature=1.0, top_p=1e-6, max_new_tokens=8))
    for i in range(len(top1)):
        assert top1.token_ids[i] == greedy.token_ids[top1.prompt_index[i]]
        assert tiny_p.token_ids[i] == greedy.token_ids[tiny_p.prompt_index[i]]
        assert all(lp == 0.0 for lp in top1.logprobs[i])  # a one-token distribution has probability 1


def test_stop_strings_end_completions(engine):
    torch.manual_seed(3)
    free = engine.generate(prompts(engine), 8, SamplingParams(max_new_tokens=16))
    # pick a stop string (an ASCII letter or digit) that the free-running samples do produce
    stop = next(ch for t in free.text for ch in t if ch.isascii() and ch.isalnum())
    torch.manual_seed(3)
    out = engine.generate(prompts(engine), 8, SamplingParams(max_new_tokens=16, stop=(stop,)))
    stopped = 0
    decode = engine.tokenizer.decode  # with special tokens: a stop string may sit inside one
    for ids, reason in zip(out.token_ids, out.finish_reason):
        if stop in decode(ids):
            assert reason == "stop"
            assert stop not in decode(ids[:-1])  # nothing after the token that completed the stop string
            stopped += 1
        else:
            assert reason == "length" or ids[-1] == engine.tokenizer.eos_token_id
    assert stopped > 0


def test_load_weights_changes_samples(tiny_model_dir, engine):
    other = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    with torch.no_grad():
        for param in other.parameters():
            param.add_(torch.randn_like(param) * 0.5)
    target = HFEngine(AutoModelForCausalLM.from_pretrained(tiny_model_dir), engine.tokenizer)
    target.load_weights(other.named_parameters())
    for (name, a), (_, b) in zip(target.model.named_parameters(), other.named_parameters()):
        assert torch.equal(a, b), name
    with pytest.raises(KeyError, match="no parameter"):
        target.load_weights([("not.a.param", torch.zeros(1))])


def test_sampling_params_validate():
    with pytest.raises(ValueError, match="top_p"):
        SamplingParams(top_p=0.0)
    with pytest.raises(ValueError, match="max_new_tokens"):
        SamplingParams(max_new_tokens=0)


@pytest.mark.parametrize("case", ["seeded", "unseeded", "greedy", "top_p_and_stop"])
def test_decode_loop_draws_what_generate_draws(engine, case):
    """The engine's own decode loop against transformers' ``generate`` with the same warper and stopping
    criterion, on left-padded prompts of different lengths: the same tokens, the same log-probs, the same
    finishing steps (``generate`` is the reference here, not the engine's path)."""
    from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteriaList
    from transformers.generation.stopping_criteria import EosTokenCriteria, StopStringCriteria

    from grpo.engines.hf import _FinishRecorder, _WarpAndRecord, decode

    tok, model = engine.tokenizer, engine.model.eval()
    p = prompts(engine) * 4  # 12 rows
    width = max(len(x) for x in p)
    input_ids = torch.full((len(p), width), engine.pad_id)
    attention_mask = torch.zeros((len(p), width), dtype=torch.long)
    for row, ids in enumerate(p):
        input_ids[row, width - len(ids):] = torch.tensor(ids)
        attention_mask[row, width - len(ids):] = 1
    sampling = {"seeded": SamplingParams(max_new_tokens=14), "unseeded": SamplingParams(max_new_tokens=14),
                "greedy": SamplingParams(temperature=0.0, max_new_tokens=14),
                "top_p_and_stop": SamplingParams(top_p=0.9, max_new_tokens=14, stop=("1",))}[case]
    seeds = list(range(100, 100 + len(p))) if case in ("seeded", "top_p_and_stop") else None
    do_sample = sampling.temperature > 0 and seeds is None

    def parts():
        criteria = [EosTokenCriteria(eos_token_id=tok.eos_token_id)]
        if sampling.stop:
            criteria.append(StopStringCriteria(tok, list(sampling.stop)))
        return _WarpAndRecord(sampling, seeds), _FinishRecorder(criteria, width, len(p), input_ids.device)

    results = []
    for use_generate in (True, False):
        warper, recorder = parts()
        torch.manual_seed(7)  # the unseeded case draws from the global generator: the same state for both
        if use_generate:
            config = GenerationConfig(do_sample=do_sample, max_new_tokens=sampling.max_new_tokens, temperature=1.0,
                                      top_k=0, top_p=1.0, num_beams=1, eos_token_id=tok.eos_token_id,
                                      pad_token_id=engine.pad_id, use_cache=True)
            sequences = model.generate(input_ids=input_ids, attention_mask=attention_mask, generation_config=config,
                                       logits_processor=LogitsProcessorList([warper]),
                                       stopping_criteria=StoppingCriteriaList([recorder]))
        else:
            sequences = decode(model, input_ids, attention_mask, max_new_tokens=sampling.max_new_tokens,
                               do_sample=do_sample, pad_id=engine.pad_id, logits_processor=warper,
                               stopping_criteria=recorder)
        results.append((sequences, warper.finish(sequences), recorder.finished_at.clone()))
    (seq_a, lp_a, end_a), (seq_b, lp_b, end_b) = results
    assert torch.equal(seq_a, seq_b)
    assert torch.equal(end_a, end_b)
    torch.testing.assert_close(lp_a, lp_b, atol=1e-5, rtol=0)
    if case != "greedy":
        assert len({tuple(r) for r in seq_a[:, width:].tolist()}) > 3  # real sampling, not one repeated row
    assert (end_a >= 0).any() or case != "top_p_and_stop"  # the stop string ended some rows
