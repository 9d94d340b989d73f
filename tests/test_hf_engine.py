import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from grpo.engines.hf import HFEngine
from grpo.logprobs import completion_logprobs, pack
from grpo.engines.base import SamplingParams


@pytest.fixture(scope="module", params=["auto", "generate"])
def engine(tiny_model_dir, request):
    """Both decoders: rlvr's own loop (the tiny Qwen2's default) and Hugging Face generate."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    engine = HFEngine(model, tokenizer, batch_size=16, decoder=request.param)
    assert engine.own_decoding() == (request.param == "auto")
    return engine


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


def test_unseeded_draws_follow_the_distribution_from_torchs_rng():
    """Without row seeds the warper draws too (by inverse CDF, from torch's RNG, not ``generate``'s
    ``multinomial``): one token per row gets all the mass, the frequencies are the warped
    probabilities, a top-p cut token never comes up, and the same torch seed draws the same tokens."""
    from grpo.engines.hf import _WarpAndRecord

    rows = 4000
    logits = torch.tensor([[-1e9, 2.0, 0.5, -1e9, 1.0, 0.0, -0.5, -1e9]]).repeat(rows, 1)  # (B, V)
    sampling = SamplingParams(temperature=0.5, top_p=0.9, max_new_tokens=3)
    torch.manual_seed(0)
    out = _WarpAndRecord(sampling)(torch.zeros((rows, 1), dtype=torch.long), logits.clone())
    assert torch.equal(torch.isfinite(out).sum(-1), torch.ones(rows, dtype=torch.long))  # all mass on one token
    tokens = out.argmax(-1)
    warped = torch.softmax(torch.tensor([2.0, 1.0, 0.5, 0.0, -0.5]) / 0.5, -1)  # tokens 1, 4, 2, 5, 6
    assert warped[0] < 0.9 <= warped[:2].sum()  # top-p 0.9 keeps tokens 1 and 4
    probs = warped[:2] / warped[:2].sum()
    counts = torch.bincount(tokens, minlength=8).float()
    assert counts[[0, 2, 3, 5, 6, 7]].sum() == 0  # cut by top-p or masked by their -1e9 logits
    for token, p in zip([1, 4], probs.tolist()):
        sigma = (rows * p * (1 - p)) ** 0.5
        assert abs(counts[token] - rows * p) < 4 * sigma, (token, counts[token], rows * p)
    torch.manual_seed(0)
    again = _WarpAndRecord(sampling)(torch.zeros((rows, 1), dtype=torch.long), logits.clone()).argmax(-1)
    assert torch.equal(again, tokens)


@pytest.mark.parametrize("bad_row", [[0.1, float("nan"), 0.3], [0.1, float("inf"), 0.3], [float("-inf")] * 3],
                         ids=["nan", "inf", "all-minus-inf"])
@pytest.mark.parametrize("row_seeds", [None, [0, 1]], ids=["stream", "per_prompt"])
def test_a_nan_score_stops_sampling_with_a_clear_error(row_seeds, bad_row):
    """NaN or infinite scores (a broken policy) have no distribution: the draw says so, naming the row,
    instead of inverting a NaN cumulative sum into the vocabulary's last token; in generate's step and
    in the own decode loop's."""
    from grpo.engines.hf import _WarpAndRecord

    logits = torch.tensor([[0.5, 1.0, 2.0], bad_row])
    for call in ("generate", "pick"):
        warper = _WarpAndRecord(SamplingParams(temperature=1.0, max_new_tokens=2), row_seeds=row_seeds)
        with pytest.raises(ValueError, match=r"row 1 are NaN or infinite at new token 1.*earlier checkpoint"):
            warper(torch.zeros((2, 1), dtype=torch.long), logits) if call == "generate" else warper.pick(logits)


def test_seeded_draws_follow_the_distribution_and_never_pick_a_masked_token():
    """The per-row draw (each row's own uniforms, inverted through its cumulative distribution): over many
    seeds its frequencies are the warped probabilities, tokens top-k cut away never come up, and a row's
    draws depend on its seed alone."""
    from grpo.engines.hf import _WarpAndRecord

    rows = 4000
    logits = torch.tensor([[-1e9, 2.0, 0.5, -1e9, 1.0, 0.0, -0.5, -1e9]]).repeat(rows, 1)  # (B, V)
    sampling = SamplingParams(temperature=1.0, top_k=4, max_new_tokens=3)
    warper = _WarpAndRecord(sampling, row_seeds=list(range(rows)))
    first = warper(torch.zeros((rows, 1), dtype=torch.long), logits.clone())  # (B, V): 0 at the drawn token
    tokens = first.argmax(-1)
    probs = torch.softmax(torch.tensor([2.0, 0.5, 1.0, 0.0]), -1)  # the top 4 of the row: tokens 1, 2, 4, 5
    counts = torch.bincount(tokens, minlength=8).float()
    assert counts[[0, 3, 6, 7]].sum() == 0  # masked by top-k or by their -1e9 logits
    for token, p in zip([1, 2, 4, 5], probs.tolist()):
        sigma = (rows * p * (1 - p)) ** 0.5
        assert abs(counts[token] - rows * p) < 4 * sigma, (token, counts[token], rows * p)
    # the same seeds in another order and another batch: each row draws what its seed draws
    again = _WarpAndRecord(sampling, row_seeds=list(range(rows))[::-1][:50])
    redrawn = again(torch.zeros((50, 1), dtype=torch.long), logits[:50].clone()).argmax(-1)
    assert torch.equal(redrawn, tokens.flip(0)[:50])
    # a second step uses the rows' next numbers, not the first ones again
    second = warper(torch.zeros((rows, 2), dtype=torch.long), logits.clone()).argmax(-1)
    assert (second != tokens).float().mean() > 0.3
