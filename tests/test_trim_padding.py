"""Padding trimmed from the log-prob passes: rows grouped by completion length, each group run only as
wide as its longest completion. The values and gradients under the completion mask must equal those of
the untrimmed pass, with and without prompt sharing; the grouping must be the cheapest one."""

import itertools
import random

import pytest
import torch

from grpo.logprobs import completion_logprobs, length_buckets, pack
from test_prompt_sharing import PAD, Forwards, _grads, _model


def _cost(groups, lengths, base, overhead):
    return sum(len(rows) * (base + width) + overhead for rows, width in groups)


def _every_cut(lengths, base, overhead):
    """Brute force: the cheapest cost over every way to cut the sorted rows into contiguous groups."""
    widths = sorted(max(1, n) for n in lengths)
    best = float("inf")
    for k in range(len(widths)):
        for cuts in itertools.combinations(range(1, len(widths)), k):
            bounds = (0, *cuts, len(widths))
            cost = sum((j - i) * (base + widths[j - 1]) + overhead for i, j in zip(bounds, bounds[1:]))
            best = min(best, cost)
    return best


def test_length_buckets_is_the_cheapest_grouping_and_covers_every_row_once():
    rng = random.Random(0)
    for _ in range(200):
        lengths = [rng.choice([0, 1, 2, 5, 9, 30, 31, 64]) for _ in range(rng.randint(1, 9))]
        base, overhead = rng.choice([1, 40]), rng.choice([0, 8, 64])
        groups = length_buckets(lengths, base, overhead)
        assert sorted(r for rows, _ in groups for r in rows) == list(range(len(lengths)))
        assert all(width >= max(1, lengths[r]) for rows, width in groups for r in rows)
        assert _cost(groups, lengths, base, overhead) == _every_cut(lengths, base, overhead)


def test_length_buckets_keeps_a_batch_whole_when_splitting_does_not_pay():
    assert length_buckets([5, 3, 7, 2], base=1, overhead=64) == [([0, 1, 2, 3], 7)]
    assert length_buckets([3, 0], base=1, overhead=2) == [([0, 1], 3)]  # a tie (10 positions either way): kept whole
    assert length_buckets([3, 0], base=1, overhead=0) == [([1], 1), ([0], 3)]
    groups = length_buckets([60, 2, 64, 1, 3, 62, 2, 61], base=1, overhead=64)
    assert groups == [([3, 1, 6, 4], 3), ([0, 7, 5, 2], 64)]


def _uneven_batch():
    """Two prompts of 8 rows each; half the completions are 1-3 tokens, half 60-64: trimming splits it."""
    g = torch.Generator().manual_seed(2)
    prompts = [[5, 17, 33, 2, 9, 40], [PAD, 7, 8]]
    lengths = [1, 62, 3, 64, 2, 60, 61, 2, 3, 63, 1, 60, 2, 64, 1, 62]
    completions = [torch.randint(1, 96, (n,), generator=g).tolist() for n in lengths]
    return pack([prompts[i % 2] for i in range(len(lengths))], completions, PAD)


@pytest.mark.parametrize("share", [True, False])
@pytest.mark.parametrize("kind", ["llama", "qwen2"])
def test_trimmed_passes_give_the_same_logprobs_entropy_and_gradients(kind, share):
    model, batch = _model(kind), _uneven_batch()
    calls = Forwards(model)
    out = {}
    for trim in (False, True):
        model.zero_grad(set_to_none=True)
        before = calls.count
        lp, ent = completion_logprobs(model, batch, 0.8, with_entropy=True, share_prompts=share, trim_padding=trim)
        out[trim] = (lp.detach(), ent, calls.count - before)
        weights = torch.linspace(-1, 1, lp.numel()).view_as(lp)
        ((lp * weights) * batch.completion_mask).sum().backward()
        out[trim] += (_grads(model),)
    (lp0, ent0, n0, g0), (lp1, ent1, n1, g1) = out[False], out[True]
    assert (n0, n1) == ((2, 3) if share else (1, 2))  # the trimmed way really ran the two groups apart
    assert lp1.shape == lp0.shape == batch.completion_ids.shape
    m = batch.completion_mask.bool()
    torch.testing.assert_close(lp1[m], lp0[m], atol=2e-5, rtol=1e-5)
    torch.testing.assert_close(ent1[m], ent0[m], atol=2e-5, rtol=1e-5)
    assert (lp1[~m] == 0).sum() > 0  # the short rows' cut-off positions
    assert g0.keys() == g1.keys() and len(g0) > 0
    for name in g0:
        torch.testing.assert_close(g1[name], g0[name], atol=2e-5, rtol=1e-4, msg=name)
