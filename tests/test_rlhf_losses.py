"""Tests for grpo.rlhf_losses against slow, obviously-correct loop references."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch import Tensor, nn

from grpo.losses import kl_k3, token_logprobs
from grpo.rlhf_losses import (
    ADAPTIVE_KL_ERROR_CLIP,
    KL_CONTROLLER_KINDS,
    KL_ESTIMATORS,
    AdaptiveKLController,
    FixedKLController,
    bradley_terry_loss,
    dpo_loss,
    explained_variance,
    gae,
    kl_controller_from_state_dict,
    kl_penalized_rewards,
    kl_penalty,
    make_kl_controller,
    value_loss,
    whiten,
)

SEEDS: list[int] = [0, 1, 2]
BT_SHAPES: list[tuple[int, int]] = [(1, 1), (3, 5), (8, 7), (4, 16)]
F64 = torch.float64
NAN = float("nan")


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def make_lengths(b: int, t: int, seed: int, allow_empty: bool = True) -> list[int]:
    """Random lengths in [0, T] (or [1, T]); with B > 2 one row is full and, if allowed, one empty."""
    low = 0 if allow_empty else 1
    lengths = torch.randint(low, t + 1, (b,), generator=gen(500 + seed)).tolist()
    if b > 2:
        lengths[1] = t
        if allow_empty:
            lengths[0] = 0
    return lengths


def right_mask(lengths: list[int], t: int) -> Tensor:
    return torch.arange(t).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)  # (B, T) bool


def pad_with_nan(x: Tensor, mask: Tensor) -> Tensor:
    """Padding holds NaN: a function that lets padding leak fails loudly."""
    return torch.where(mask, x, torch.full_like(x, NAN))


# --------------------------------------------------------------------------- references


def ref_gae(
    rewards: list[list[float]],
    values: list[list[float]],
    lengths: list[int],
    gamma: float,
    lam: float,
    truncated: list[bool],
    bootstrap: list[float],
) -> tuple[list[list[float]], list[list[float]]]:
    """One sequence at a time, straight from the definition."""
    advs, rets = [], []
    for b, length in enumerate(lengths):
        t_len = len(rewards[b])
        adv = [0.0] * t_len
        ret = [0.0] * t_len
        following = 0.0
        for t in reversed(range(length)):
            if t + 1 < length:
                next_value = values[b][t + 1]
            else:
                next_value = bootstrap[b] if truncated[b] else 0.0
            delta = rewards[b][t] + gamma * next_value - values[b][t]
            following = delta + gamma * lam * following
            adv[t] = following
            ret[t] = following + values[b][t]
        advs.append(adv)
        rets.append(ret)
    return advs, rets


def ref_masked_values(x: Tensor, mask: Tensor) -> list[float]:
    return [float(x[i, j]) for i in range(x.shape[0]) for j in range(x.shape[1]) if mask[i, j]]


def ref_whiten(x: Tensor, mask: Tensor, shift_mean: bool, eps: float) -> list[list[float]]:
    vals = ref_masked_values(x, mask)
    n = len(vals)
    mean = sum(vals) / n if n else 0.0
    var = sum((v - mean) ** 2 for v in vals) / (n - 1) if n >= 2 else 0.0
    out = []
    for i in range(x.shape[0]):
        row = []
        for j in range(x.shape[1]):
            if mask[i, j]:
                w = (float(x[i, j]) - mean) / math.sqrt(var + eps)
                row.append(w if shift_mean else w + mean)
            else:
                row.append(0.0)
        out.append(row)
    return out


def ref_value_loss(
    v: Tensor, old: Tensor, ret: Tensor, mask: Tensor, clip_eps: float | None
) -> tuple[float, float]:
    """(token-mean loss, clip fraction)."""
    total, clipped_count, count = 0.0, 0, 0
    for i in range(v.shape[0]):
        for j in range(v.shape[1]):
            if not mask[i, j]:
                continue
            a, o, r = float(v[i, j]), float(old[i, j]), float(ret[i, j])
            unclipped = (a - r) ** 2
            if clip_eps is None:
                total += 0.5 * unclipped
            else:
                a_clip = o + min(max(a - o, -clip_eps), clip_eps)
                clipped = (a_clip - r) ** 2
                total += 0.5 * max(unclipped, clipped)
                clipped_count += clipped > unclipped
            count += 1
    return total / max(count, 1), clipped_count / max(count, 1)


def ref_explained_variance(v: Tensor, ret: Tensor, mask: Tensor) -> float:
    r = ref_masked_values(ret, mask)
    e = [a - b for a, b in zip(r, ref_masked_values(v, mask))]

    def var(xs: list[float]) -> float:
        m = sum(xs) / len(xs)
        return sum((x - m) ** 2 for x in xs) / len(xs)

    return 1.0 - var(e) / var(r)


def ref_penalized_rewards(
    score: list[float],
    kl: Tensor,
    lengths: list[int],
    kl_coef: float,
    score_clip: float | None,
    truncated: list[bool],
    penalty: float,
) -> list[list[float]]:
    out = []
    for b, length in enumerate(lengths):
        s = score[b]
        if score_clip is not None:
            s = min(max(s, -score_clip), score_clip)
        if truncated[b]:
            s -= penalty
        row = []
        for t in range(kl.shape[1]):
            r = 0.0
            if t < length:
                r = -kl_coef * float(kl[b, t])
                if t == length - 1:
                    r += s
            row.append(r)
        out.append(row)
    return out


def ref_neg_log_sigmoid(x: float) -> float:
    """-log(1 / (1 + exp(-x))) without overflow."""
    return math.log1p(math.exp(-x)) if x >= 0 else -x + math.log1p(math.exp(x))


def ref_bt(chosen: list[float], rejected: list[float], margin: list[float], center_coef: float) -> float:
    total = 0.0
    for c, r, m in zip(chosen, rejected, margin):
        total += ref_neg_log_sigmoid(c - r - m) + center_coef * (c + r) ** 2
    return total / len(chosen)


def ref_dpo(pc: list[float], pr: list[float], rc: list[float], rr: list[float], beta: float, eps: float) -> float:
    total = 0.0
    for a, b, c, d in zip(pc, pr, rc, rr):
        z = beta * ((a - c) - (b - d))
        total += (1 - eps) * ref_neg_log_sigmoid(z) + eps * ref_neg_log_sigmoid(-z)
    return total / len(pc)


# --------------------------------------------------------------------------- gae


@pytest.mark.parametrize("shape", BT_SHAPES)
@pytest.mark.parametrize("gamma,lam", [(1.0, 0.95), (0.99, 0.9), (1.0, 1.0), (0.9, 0.0)])
@pytest.mark.parametrize("with_truncation", [False, True])
def test_gae_matches_reference(shape: tuple[int, int], gamma: float, lam: float, with_truncation: bool) -> None:
    b, t = shape
    for seed in SEEDS:
        lengths = make_lengths(b, t, seed)
        mask = right_mask(lengths, t)
        rewards = pad_with_nan(torch.randn(shape, generator=gen(seed), dtype=F64), mask)
        values = pad_with_nan(torch.randn(shape, generator=gen(seed + 1), dtype=F64), mask)
        if with_truncation:
            truncated = torch.rand(b, generator=gen(seed + 2)) < 0.5
            truncated[-1] = True  # at least one row bootstraps
            bootstrap = torch.randn(b, generator=gen(seed + 3), dtype=F64)
            bootstrap[~truncated] = NAN  # ignored for rows that ended
            kwargs = dict(truncated=truncated, bootstrap_value=bootstrap)
        else:
            truncated = torch.zeros(b, dtype=torch.bool)
            bootstrap = torch.zeros(b, dtype=F64)
            kwargs = {}
        adv, ret = gae(rewards, values, mask.int(), gamma=gamma, lam=lam, **kwargs)
        want_adv, want_ret = ref_gae(
            rewards.tolist(), values.tolist(), lengths, gamma, lam, truncated.tolist(), bootstrap.tolist()
        )
        assert adv.shape == ret.shape == shape and adv.dtype == F64
        torch.testing.assert_close(adv, torch.tensor(want_adv, dtype=F64), rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(ret, torch.tensor(want_ret, dtype=F64), rtol=1e-10, atol=1e-10)


def test_gae_special_cases_of_lambda() -> None:
    """lam = 1: discounted return to the end minus V(s_t); lam = 0: the one-step TD error."""
    b, t, gamma = 5, 9, 0.97
    lengths = [9, 4, 1, 7, 9]
    mask = right_mask(lengths, t)
    rewards = torch.randn(b, t, generator=gen(0), dtype=F64) * mask
    values = torch.randn(b, t, generator=gen(1), dtype=F64) * mask
    truncated = torch.tensor([True, False, True, False, False])
    boot = torch.randn(b, generator=gen(2), dtype=F64)
    adv1, ret1 = gae(rewards, values, mask, gamma=gamma, lam=1.0, truncated=truncated, bootstrap_value=boot)
    adv0, _ = gae(rewards, values, mask, gamma=gamma, lam=0.0, truncated=truncated, bootstrap_value=boot)
    for i, length in enumerate(lengths):
        end = float(boot[i]) if truncated[i] else 0.0
        for j in range(length):
            mc = sum(gamma ** (k - j) * float(rewards[i, k]) for k in range(j, length)) + gamma ** (length - j) * end
            assert math.isclose(float(ret1[i, j]), mc, rel_tol=1e-10, abs_tol=1e-10)
            assert math.isclose(float(adv1[i, j]), mc - float(values[i, j]), rel_tol=1e-10, abs_tol=1e-10)
            next_v = float(values[i, j + 1]) if j + 1 < length else end
            td = float(rewards[i, j]) + gamma * next_v - float(values[i, j])
            assert math.isclose(float(adv0[i, j]), td, rel_tol=1e-10, abs_tol=1e-10)


def test_gae_hand_example_terminal_vs_truncated() -> None:
    rewards = torch.tensor([[0.0, 1.0, 0.0]])
    values = torch.tensor([[0.5, 0.5, 0.0]])
    mask = torch.tensor([[1, 1, 0]])
    adv, ret = gae(rewards, values, mask, gamma=1.0, lam=1.0)
    torch.testing.assert_close(adv, torch.tensor([[0.5, 0.5, 0.0]]))
    torch.testing.assert_close(ret, torch.tensor([[1.0, 1.0, 0.0]]))
    # cut at the length limit: V(s_2) = 2 is bootstrapped
    adv, ret = gae(
        rewards, values, mask, gamma=1.0, lam=1.0, truncated=torch.tensor([True]), bootstrap_value=torch.tensor([2.0])
    )
    torch.testing.assert_close(adv, torch.tensor([[2.5, 2.5, 0.0]]))
    torch.testing.assert_close(ret, torch.tensor([[3.0, 3.0, 0.0]]))
    # the same bootstrap value on a row that ended is ignored
    adv, _ = gae(
        rewards, values, mask, gamma=1.0, lam=1.0, truncated=torch.tensor([False]), bootstrap_value=torch.tensor([2.0])
    )
    torch.testing.assert_close(adv, torch.tensor([[0.5, 0.5, 0.0]]))


def test_gae_rows_independent_of_batch_padding() -> None:
    """A row's result does not depend on the other rows or on how far the batch is padded."""
    rewards = torch.randn(1, 4, generator=gen(0), dtype=F64)
    values = torch.randn(1, 4, generator=gen(1), dtype=F64)
    alone, _ = gae(rewards, values, torch.ones(1, 4))
    padded_r = torch.cat([rewards, torch.full((1, 3), NAN, dtype=F64)], 1)
    padded_v = torch.cat([values, torch.full((1, 3), NAN, dtype=F64)], 1)
    other_r = torch.randn(1, 7, generator=gen(2), dtype=F64)
    other_v = torch.randn(1, 7, generator=gen(3), dtype=F64)
    mask = torch.tensor([[1, 1, 1, 1, 0, 0, 0], [1] * 7])
    batch, _ = gae(torch.cat([padded_r, other_r]), torch.cat([padded_v, other_v]), mask)
    torch.testing.assert_close(batch[0, :4], alone[0])
    assert (batch[0, 4:] == 0).all()


def test_gae_no_gradient_and_empty() -> None:
    values = torch.randn(2, 3, requires_grad=True)
    adv, ret = gae(torch.zeros(2, 3), values, torch.zeros(2, 3))
    assert not adv.requires_grad and not ret.requires_grad
    assert (adv == 0).all() and (ret == 0).all()
    adv, ret = gae(torch.zeros(2, 0), torch.zeros(2, 0), torch.zeros(2, 0))
    assert adv.shape == (2, 0)


def test_gae_errors() -> None:
    r, v = torch.zeros(2, 3), torch.zeros(2, 3)
    with pytest.raises(ValueError, match="right-padded"):
        gae(r, v, torch.tensor([[0, 1, 1], [1, 1, 1]]))
    with pytest.raises(ValueError, match="together"):
        gae(r, v, torch.ones(2, 3), truncated=torch.tensor([True, False]))
    with pytest.raises(ValueError, match="together"):
        gae(r, v, torch.ones(2, 3), bootstrap_value=torch.zeros(2))
    with pytest.raises(ValueError, match=r"\(B,\)"):
        gae(r, v, torch.ones(2, 3), truncated=torch.tensor([True]), bootstrap_value=torch.zeros(1))
    with pytest.raises(ValueError, match="values"):
        gae(r, torch.zeros(2, 4), torch.ones(2, 3))
    with pytest.raises(ValueError, match="gamma"):
        gae(r, v, torch.ones(2, 3), gamma=1.5)
    with pytest.raises(ValueError, match="lam"):
        gae(r, v, torch.ones(2, 3), lam=-0.1)


# --------------------------------------------------------------------------- whiten


@pytest.mark.parametrize("shape", BT_SHAPES)
@pytest.mark.parametrize("shift_mean", [True, False])
def test_whiten_matches_reference(shape: tuple[int, int], shift_mean: bool) -> None:
    b, t = shape
    for seed in SEEDS:
        mask = right_mask(make_lengths(b, t, seed), t)
        x = pad_with_nan(torch.randn(shape, generator=gen(seed), dtype=F64) * 3 + 1, mask)
        got = whiten(x, mask, shift_mean=shift_mean, eps=1e-8)
        want = ref_whiten(x, mask, shift_mean, 1e-8)
        torch.testing.assert_close(got, torch.tensor(want, dtype=F64), rtol=1e-9, atol=1e-9)
        if int(mask.sum()) >= 2 and shift_mean:
            vals = got[mask]
            assert abs(float(vals.mean())) < 1e-9
            assert math.isclose(float(vals.std()), 1.0, rel_tol=1e-6)


def test_whiten_degenerate() -> None:
    assert (whiten(torch.tensor([[NAN, NAN]]), torch.zeros(1, 2)) == 0).all()
    one = whiten(torch.tensor([[3.0, NAN]]), torch.tensor([[1, 0]]))
    assert (one == 0).all()
    with pytest.raises(ValueError, match="shape"):
        whiten(torch.zeros(2, 3), torch.ones(3, 2))


# --------------------------------------------------------------------------- value loss


@pytest.mark.parametrize("shape", BT_SHAPES)
@pytest.mark.parametrize("clip_eps", [None, 0.2, 1.0])
def test_value_loss_matches_reference(shape: tuple[int, int], clip_eps: float | None) -> None:
    b, t = shape
    saw_clip = False
    for seed in SEEDS:
        mask = right_mask(make_lengths(b, t, seed), t)
        old = torch.randn(shape, generator=gen(seed), dtype=F64)
        v = (old + 0.5 * torch.randn(shape, generator=gen(seed + 1), dtype=F64)).requires_grad_(True)
        ret = torch.randn(shape, generator=gen(seed + 2), dtype=F64)
        loss, metrics = value_loss(v, old, ret, mask, clip_eps=clip_eps)
        want_loss, want_frac = ref_value_loss(v.detach(), old, ret, mask, clip_eps)
        assert math.isclose(loss.item(), want_loss, rel_tol=1e-10, abs_tol=1e-12)
        assert math.isclose(metrics["value_clip_frac"], want_frac, abs_tol=1e-12)
        assert metrics["num_tokens"] == float(mask.sum())
        saw_clip |= metrics["value_clip_frac"] > 0
        # the gradient flows exactly where the unclipped error is the larger (or equal) one
        loss.backward()
        count = max(int(mask.sum()), 1)
        v0 = v.detach()
        if clip_eps is None:
            want_grad = (v0 - ret) / count
        else:
            v_clip = old + (v0 - old).clamp(-clip_eps, clip_eps)
            use_clip = (v_clip - ret) ** 2 > (v0 - ret) ** 2
            inside = (v0 - old).abs() < clip_eps
            want_grad = torch.where(use_clip & ~inside, torch.zeros_like(v0), (torch.where(use_clip, v_clip, v0) - ret))
            want_grad = want_grad / count
        torch.testing.assert_close(v.grad, torch.where(mask, want_grad, torch.zeros_like(v0)))
    if clip_eps == 0.2 and b * t >= 20:
        assert saw_clip


def test_value_loss_hand_example() -> None:
    # old 0, return 1: a value of 0.5 is clipped to 0.2 (error 0.64 > 0.25): loss 0.5 * 0.64, no gradient
    v = torch.tensor([[0.5]], requires_grad=True)
    loss, m = value_loss(v, torch.zeros(1, 1), torch.ones(1, 1), torch.ones(1, 1), clip_eps=0.2)
    assert loss.item() == pytest.approx(0.32)
    assert m["value_clip_frac"] == 1.0
    (g,) = torch.autograd.grad(loss, v)
    assert float(g) == 0.0
    # a value moving away from the return beyond the clip keeps the (larger) unclipped error
    loss, m = value_loss(torch.tensor([[-0.5]]), torch.zeros(1, 1), torch.ones(1, 1), torch.ones(1, 1), clip_eps=0.2)
    assert loss.item() == pytest.approx(0.5 * 2.25) and m["value_clip_frac"] == 0.0


def test_value_loss_micro_batches_sum_to_full_batch() -> None:
    b, t = 6, 5
    mask = right_mask([5, 0, 3, 1, 5, 2], t)
    old = torch.randn(b, t, generator=gen(0), dtype=F64)
    v = (old + 0.4 * torch.randn(b, t, generator=gen(1), dtype=F64)).requires_grad_(True)
    ret = torch.randn(b, t, generator=gen(2), dtype=F64)
    full, _ = value_loss(v, old, ret, mask, clip_eps=0.2)
    (full_grad,) = torch.autograd.grad(full, v)
    n = float(mask.sum())
    parts = [value_loss(v[s], old[s], ret[s], mask[s], clip_eps=0.2, num_tokens=n)[0] for s in (slice(0, 1), slice(1, 4), slice(4, 6))]
    total = sum(parts)
    assert math.isclose(total.item(), full.item(), rel_tol=1e-12)
    (grad,) = torch.autograd.grad(total, v)
    torch.testing.assert_close(grad, full_grad)
    # without the full-batch count the uneven split does not reproduce it
    plain = sum(value_loss(v[s], old[s], ret[s], mask[s], clip_eps=0.2)[0] for s in (slice(0, 1), slice(1, 4), slice(4, 6)))
    assert not math.isclose(plain.item(), full.item(), rel_tol=1e-6)


def test_value_loss_errors() -> None:
    z = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="clip_eps"):
        value_loss(z, z, z, z, clip_eps=0.0)
    with pytest.raises(ValueError, match="returns"):
        value_loss(z, z, torch.zeros(2, 2), z, clip_eps=0.2)


@pytest.mark.parametrize("shape", BT_SHAPES[1:])
def test_explained_variance_matches_reference(shape: tuple[int, int]) -> None:
    b, t = shape
    for seed in SEEDS:
        mask = right_mask(make_lengths(b, t, seed, allow_empty=False), t)
        ret = pad_with_nan(torch.randn(shape, generator=gen(seed), dtype=F64), mask)
        v = pad_with_nan(ret + 0.5 * torch.randn(shape, generator=gen(seed + 1), dtype=F64), mask)
        got = explained_variance(v, ret, mask)
        assert math.isclose(got, ref_explained_variance(v, ret, mask), rel_tol=1e-9)


def test_explained_variance_known_values() -> None:
    ret = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    mask = torch.ones(1, 4)
    assert explained_variance(ret, ret, mask) == 1.0
    assert explained_variance(torch.full((1, 4), 2.5), ret, mask) == pytest.approx(0.0)
    assert explained_variance(torch.full((1, 4), 100.0), ret, mask) == pytest.approx(0.0)  # a constant offset
    assert explained_variance(-ret, ret, mask) == pytest.approx(-3.0)
    assert math.isnan(explained_variance(ret, torch.ones(1, 4), mask))
    assert math.isnan(explained_variance(ret, ret, torch.zeros(1, 4)))


# --------------------------------------------------------------------------- KL penalty


@pytest.mark.parametrize("shape", BT_SHAPES)
def test_kl_estimators(shape: tuple[int, int]) -> None:
    for seed in SEEDS:
        lp = -torch.rand(shape, generator=gen(seed), dtype=F64) * 4
        ref = lp + torch.randn(shape, generator=gen(seed + 1), dtype=F64)
        k1 = kl_penalty(lp, ref, "k1")
        k2 = kl_penalty(lp, ref, "k2")
        for i in range(shape[0]):
            for j in range(shape[1]):
                d = float(lp[i, j]) - float(ref[i, j])
                assert math.isclose(float(k1[i, j]), d, abs_tol=1e-12)
                assert math.isclose(float(k2[i, j]), 0.5 * d * d, abs_tol=1e-12)
        torch.testing.assert_close(kl_penalty(lp, ref, "k3"), kl_k3(lp, ref))
        assert torch.equal(kl_penalty(lp, ref), k1)  # k1 is the default


def test_kl_estimators_unbiased_on_a_known_pair() -> None:
    """k1 and k3 average to KL(p || q) of two categoricals when sampled from p."""
    p = torch.tensor([0.5, 0.3, 0.2], dtype=F64)
    q = torch.tensor([0.2, 0.2, 0.6], dtype=F64)
    exact = float((p * (p / q).log()).sum())
    tokens = torch.multinomial(p, 200_000, replacement=True, generator=gen(0))
    lp, ref = p.log()[tokens].unsqueeze(0), q.log()[tokens].unsqueeze(0)
    for estimator in ("k1", "k3"):
        assert float(kl_penalty(lp, ref, estimator).mean()) == pytest.approx(exact, abs=0.01)


def test_kl_penalty_unknown_estimator() -> None:
    with pytest.raises(ValueError) as info:
        kl_penalty(torch.zeros(1, 1), torch.zeros(1, 1), "k4")  # type: ignore[arg-type]
    for name in KL_ESTIMATORS:
        assert name in str(info.value)
    with pytest.raises(ValueError, match="differ"):
        kl_penalty(torch.zeros(1, 2), torch.zeros(1, 3))


@pytest.mark.parametrize("shape", BT_SHAPES)
@pytest.mark.parametrize("score_clip", [None, 0.5])
@pytest.mark.parametrize("penalty", [0.0, 1.5])
def test_kl_penalized_rewards_matches_reference(shape: tuple[int, int], score_clip: float | None, penalty: float) -> None:
    b, t = shape
    for seed in SEEDS:
        lengths = make_lengths(b, t, seed, allow_empty=False)
        mask = right_mask(lengths, t)
        score = torch.randn(b, generator=gen(seed), dtype=F64)
        kl = pad_with_nan(torch.randn(shape, generator=gen(seed + 1), dtype=F64).abs(), mask)
        truncated = torch.rand(b, generator=gen(seed + 2)) < 0.5
        got = kl_penalized_rewards(
            score, kl, mask, kl_coef=0.05, score_clip=score_clip, truncated=truncated, missing_eos_penalty=penalty
        )
        want = ref_penalized_rewards(
            score.tolist(), kl, lengths, 0.05, score_clip, truncated.tolist() if penalty else [False] * b, penalty
        )
        torch.testing.assert_close(got, torch.tensor(want, dtype=F64), rtol=1e-12, atol=1e-12)


def test_kl_penalized_rewards_hand_example_and_sum() -> None:
    score = torch.tensor([2.0, -3.0])
    kl = torch.tensor([[0.1, 0.2, 0.3], [0.4, NAN, NAN]])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    got = kl_penalized_rewards(score, kl, mask, kl_coef=0.5)
    torch.testing.assert_close(got, torch.tensor([[-0.05, -0.1, -0.15 + 2.0], [-0.2 + -3.0, 0.0, 0.0]]))
    # the return of a sequence (gamma = 1) is its score minus kl_coef * its summed KL
    got = kl_penalized_rewards(
        score, kl, mask, kl_coef=0.5, score_clip=2.5, truncated=torch.tensor([False, True]), missing_eos_penalty=1.0
    )
    torch.testing.assert_close(got.sum(1), torch.tensor([2.0 - 0.3, -2.5 - 1.0 - 0.2]))


def test_kl_penalized_rewards_errors() -> None:
    score, kl = torch.zeros(2), torch.zeros(2, 3)
    with pytest.raises(ValueError, match="no real token"):
        kl_penalized_rewards(score, kl, torch.tensor([[1, 1, 0], [0, 0, 0]]), kl_coef=0.1)
    with pytest.raises(ValueError, match="truncated"):
        kl_penalized_rewards(score, kl, torch.ones(2, 3), kl_coef=0.1, missing_eos_penalty=1.0)
    with pytest.raises(ValueError, match="score"):
        kl_penalized_rewards(torch.zeros(3), kl, torch.ones(2, 3), kl_coef=0.1)
    with pytest.raises(ValueError, match="kl_coef"):
        kl_penalized_rewards(score, kl, torch.ones(2, 3), kl_coef=-0.1)
    with pytest.raises(ValueError, match="right-padded"):
        kl_penalized_rewards(score, kl, torch.tensor([[1, 0, 1], [1, 1, 1]]), kl_coef=0.1)


# --------------------------------------------------------------------------- KL controllers


def test_adaptive_kl_controller_follows_the_formula() -> None:
    ctl = make_kl_controller("adaptive", kl_coef=0.2, target=6.0, horizon=10_000)
    assert isinstance(ctl, AdaptiveKLController)
    coef = 0.2
    observed = [0.0, 3.0, 5.5, 6.0, 6.6, 7.3, 50.0, -1.0, NAN]
    for i, kl in enumerate(observed[:-1]):
        n_steps = 64 * (i + 1)
        ctl = ctl.update(kl, n_steps)
        error = kl / 6.0 - 1.0
        error = max(-0.2, min(0.2, error))  # Ziegler et al.: clip to [-0.2, 0.2]
        coef = coef * (1 + error * n_steps / 10_000)
        assert math.isclose(ctl.kl_coef, coef, rel_tol=1e-14), (kl, ctl.kl_coef, coef)
    assert ADAPTIVE_KL_ERROR_CLIP == 0.2
    # KL above target raises the coefficient, below lowers it, at target keeps it
    base = AdaptiveKLController(kl_coef=0.1, target=1.0, horizon=100)
    assert base.update(2.0, 10).kl_coef > 0.1 > base.update(0.5, 10).kl_coef
    assert base.update(1.0, 10).kl_coef == 0.1
    with pytest.raises(ValueError, match="finite"):
        ctl.update(observed[-1], 1)


def test_kl_controllers_are_immutable_and_resume() -> None:
    ctl = make_kl_controller("adaptive", kl_coef=0.05, target=2.0, horizon=1000)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ctl.kl_coef = 1.0  # type: ignore[misc]
    kls = [float(x) for x in torch.rand(10, generator=gen(0)) * 5]
    straight = ctl
    for kl in kls:
        straight = straight.update(kl, 32)
    resumed = ctl
    for kl in kls[:5]:
        resumed = resumed.update(kl, 32)
    resumed = kl_controller_from_state_dict(dict(resumed.state_dict()))
    for kl in kls[5:]:
        resumed = resumed.update(kl, 32)
    assert resumed == straight
    assert straight.kl_coef != ctl.kl_coef

    fixed = make_kl_controller("fixed", kl_coef=0.1, target=3.0)
    assert isinstance(fixed, FixedKLController)
    assert fixed.update(100.0, 64) == fixed and fixed.update(100.0, 64).kl_coef == 0.1
    assert kl_controller_from_state_dict(fixed.state_dict()) == fixed


def test_kl_controller_errors() -> None:
    with pytest.raises(ValueError) as info:
        make_kl_controller("pid", kl_coef=0.1)  # type: ignore[arg-type]
    for kind in KL_CONTROLLER_KINDS:
        assert kind in str(info.value)
    with pytest.raises(ValueError, match="target"):
        make_kl_controller("adaptive", kl_coef=0.1)
    with pytest.raises(ValueError, match="kl_coef"):
        FixedKLController(kl_coef=-1.0)
    with pytest.raises(ValueError, match="target"):
        AdaptiveKLController(kl_coef=0.1, target=0.0, horizon=10)
    with pytest.raises(ValueError, match="horizon"):
        AdaptiveKLController(kl_coef=0.1, target=1.0, horizon=10).update(1.0, 11)
    with pytest.raises(ValueError, match="n_steps"):
        FixedKLController(kl_coef=0.1).update(1.0, 0)
    with pytest.raises(ValueError, match="kind"):
        kl_controller_from_state_dict({"kl_coef": 0.1})


# --------------------------------------------------------------------------- Bradley-Terry


@pytest.mark.parametrize("b", [1, 5, 32])
@pytest.mark.parametrize("margin_kind", ["none", "float", "tensor"])
@pytest.mark.parametrize("center_coef", [0.0, 0.01])
def test_bradley_terry_matches_reference(b: int, margin_kind: str, center_coef: float) -> None:
    for seed in SEEDS:
        chosen = torch.randn(b, generator=gen(seed), dtype=F64) * 3
        rejected = torch.randn(b, generator=gen(seed + 1), dtype=F64) * 3
        margin: Tensor | float | None
        if margin_kind == "none":
            margin, margins = None, [0.0] * b
        elif margin_kind == "float":
            margin, margins = 0.5, [0.5] * b
        else:
            margin = torch.rand(b, generator=gen(seed + 2), dtype=F64)
            margins = margin.tolist()
        loss, m = bradley_terry_loss(chosen, rejected, margin, center_coef)
        want = ref_bt(chosen.tolist(), rejected.tolist(), margins, center_coef)
        assert math.isclose(loss.item(), want, rel_tol=1e-10)
        diffs = (chosen - rejected).tolist()
        assert m["accuracy"] == pytest.approx(sum(d > 0 for d in diffs) / b)
        assert m["margin_mean"] == pytest.approx(sum(diffs) / b)
        assert m["chosen_mean"] == pytest.approx(float(chosen.mean()))
        assert m["center_loss"] == pytest.approx(float(((chosen + rejected) ** 2).mean()))
        assert m["num_pairs"] == b


def test_bradley_terry_gradient_and_stability() -> None:
    chosen = torch.tensor([1.0, -2.0, 0.0, 3000.0, -3000.0], dtype=F64, requires_grad=True)
    rejected = torch.tensor([0.0, 1.0, 0.0, 0.0, 0.0], dtype=F64, requires_grad=True)
    loss, m = bradley_terry_loss(chosen, rejected, center_coef=0.1)
    assert torch.isfinite(loss)
    loss.backward()
    c, r = chosen.detach(), rejected.detach()
    d = c - r
    # d/dr_c [-log sigmoid(d)] = -sigmoid(-d); d/dr_c [(r_c + r_r)^2] = 2 (r_c + r_r)
    want_c = (-torch.sigmoid(-d) + 0.1 * 2 * (c + r)) / 5
    want_r = (torch.sigmoid(-d) + 0.1 * 2 * (c + r)) / 5
    torch.testing.assert_close(chosen.grad, want_c)
    torch.testing.assert_close(rejected.grad, want_r)
    # a tie counts half: [win, loss, tie, win, loss]
    assert m["accuracy"] == pytest.approx(2.5 / 5)
    # the pairwise loss of a huge gap is ~0 one way and ~gap the other, never inf
    assert m["bt_loss"] == pytest.approx((ref_neg_log_sigmoid(1) + ref_neg_log_sigmoid(-3) + math.log(2) + 0 + 3000) / 5)


def test_bradley_terry_centering_pulls_the_offset_to_zero() -> None:
    """The pairwise loss is blind to a shared offset; the centering term is not."""
    chosen = torch.tensor([5.0, 6.0])
    rejected = torch.tensor([4.0, 4.5])
    plain, _ = bradley_terry_loss(chosen, rejected)
    shifted, _ = bradley_terry_loss(chosen - 5, rejected - 5)
    assert float(plain) == pytest.approx(float(shifted))
    centered, _ = bradley_terry_loss(chosen, rejected, center_coef=0.01)
    centered_shifted, _ = bradley_terry_loss(chosen - 5, rejected - 5, center_coef=0.01)
    assert float(centered_shifted) < float(centered)


def test_bradley_terry_micro_batches_and_errors() -> None:
    chosen = torch.randn(6, generator=gen(0), dtype=F64, requires_grad=True)
    rejected = torch.randn(6, generator=gen(1), dtype=F64)
    full, _ = bradley_terry_loss(chosen, rejected, center_coef=0.05)
    parts = sum(
        bradley_terry_loss(chosen[s], rejected[s], center_coef=0.05, num_pairs=6)[0] for s in (slice(0, 1), slice(1, 6))
    )
    assert math.isclose(parts.item(), full.item(), rel_tol=1e-12)
    with pytest.raises(ValueError, match="squeeze"):
        bradley_terry_loss(torch.zeros(3, 1), torch.zeros(3, 1))
    with pytest.raises(ValueError, match="same shape"):
        bradley_terry_loss(torch.zeros(3), torch.zeros(4))
    with pytest.raises(ValueError, match="empty"):
        bradley_terry_loss(torch.zeros(0), torch.zeros(0))
    with pytest.raises(ValueError, match="margin"):
        bradley_terry_loss(torch.zeros(3), torch.zeros(3), torch.zeros(2))
    with pytest.raises(ValueError, match="num_pairs"):
        bradley_terry_loss(torch.zeros(3), torch.zeros(3), num_pairs=0)


# --------------------------------------------------------------------------- DPO


@pytest.mark.parametrize("b", [1, 4, 16])
@pytest.mark.parametrize("beta", [0.1, 0.5])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_dpo_matches_reference(b: int, beta: float, label_smoothing: float) -> None:
    for seed in SEEDS:
        pc, pr, rc, rr = (-torch.rand(b, generator=gen(seed + k), dtype=F64) * 50 for k in range(4))
        loss, m = dpo_loss(pc, pr, rc, rr, beta=beta, label_smoothing=label_smoothing)
        want = ref_dpo(pc.tolist(), pr.tolist(), rc.tolist(), rr.tolist(), beta, label_smoothing)
        assert math.isclose(loss.item(), want, rel_tol=1e-10)
        chosen_r = [beta * (a - c) for a, c in zip(pc.tolist(), rc.tolist())]
        rejected_r = [beta * (a - c) for a, c in zip(pr.tolist(), rr.tolist())]
        assert m["rewards_chosen"] == pytest.approx(sum(chosen_r) / b)
        assert m["rewards_rejected"] == pytest.approx(sum(rejected_r) / b)
        assert m["reward_margin"] == pytest.approx((sum(chosen_r) - sum(rejected_r)) / b)
        assert m["reward_accuracy"] == pytest.approx(sum(c > r for c, r in zip(chosen_r, rejected_r)) / b)
        assert m["logps_chosen"] == pytest.approx(float(pc.mean()))
        assert m["logps_rejected"] == pytest.approx(float(pr.mean()))


def test_dpo_at_reference_and_gradient() -> None:
    pc = torch.tensor([-10.0, -20.0], dtype=F64, requires_grad=True)
    pr = torch.tensor([-12.0, -15.0], dtype=F64, requires_grad=True)
    rc, rr = pc.detach().clone().requires_grad_(True), pr.detach().clone().requires_grad_(True)
    loss, m = dpo_loss(pc, pr, rc, rr, beta=0.1)
    assert loss.item() == pytest.approx(math.log(2))  # the policy is the reference
    assert m["reward_accuracy"] == 0.5 and m["reward_margin"] == 0.0
    loss.backward()
    # d/d logpi(y_c) = -beta * sigmoid(-z) / B with z = 0: raise chosen, lower rejected
    torch.testing.assert_close(pc.grad, torch.full((2,), -0.1 * 0.5 / 2, dtype=F64))
    torch.testing.assert_close(pr.grad, torch.full((2,), 0.1 * 0.5 / 2, dtype=F64))
    assert rc.grad is None and rr.grad is None  # the reference is a constant
    # cDPO: with label smoothing the gradient vanishes at a finite margin, not only at infinity
    eps, beta = 0.1, 0.5
    z_star = math.log((1 - eps) / eps)
    pc = torch.tensor([z_star / beta], dtype=F64, requires_grad=True)
    zero = torch.zeros(1, dtype=F64)
    loss, _ = dpo_loss(pc, zero, zero, zero, beta=beta, label_smoothing=eps)
    (g,) = torch.autograd.grad(loss, pc)
    assert abs(float(g)) < 1e-12


class TinyPolicy(nn.Module):
    """Embedding -> tanh -> Linear language-model head: a policy with real parameters."""

    def __init__(self, vocab: int, hidden: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, hidden)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, input_ids: Tensor) -> Tensor:
        return self.head(torch.tanh(self.embed(input_ids)))  # (B, T, V)


def test_dpo_steps_prefer_chosen_on_a_tiny_policy() -> None:
    """A few optimizer steps on the DPO loss of summed sequence log-probs raise the implicit reward margin."""
    torch.manual_seed(0)
    vocab, b, t = 13, 8, 6
    policy = TinyPolicy(vocab, 16).double()
    reference = TinyPolicy(vocab, 16).double()
    reference.load_state_dict(policy.state_dict())
    inputs = torch.randint(0, vocab, (2 * b, t), generator=gen(1))
    targets = torch.randint(0, vocab, (2 * b, t), generator=gen(2))
    mask = right_mask(make_lengths(2 * b, t, 3, allow_empty=False), t)

    def seq_logps(model: nn.Module) -> tuple[Tensor, Tensor]:
        lp = token_logprobs(model(inputs), targets)  # (2B, T)
        summed = torch.where(mask, lp, torch.zeros_like(lp)).sum(-1)  # (2B,)
        return summed[:b], summed[b:]

    with torch.no_grad():
        ref_c, ref_r = seq_logps(reference)
    opt = torch.optim.SGD(policy.parameters(), lr=0.5)
    history = []
    for _ in range(20):
        pol_c, pol_r = seq_logps(policy)
        loss, m = dpo_loss(pol_c, pol_r, ref_c, ref_r, beta=0.1)
        history.append((loss.item(), m["reward_margin"], m["reward_accuracy"]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert history[0][0] == pytest.approx(math.log(2))
    assert history[-1][0] < history[0][0] - 0.1
    assert history[-1][1] > history[0][1]
    assert history[-1][2] == 1.0


def test_dpo_errors() -> None:
    z = torch.zeros(3)
    with pytest.raises(ValueError, match="beta"):
        dpo_loss(z, z, z, z, beta=0.0)
    with pytest.raises(ValueError, match="label_smoothing"):
        dpo_loss(z, z, z, z, beta=0.1, label_smoothing=0.5)
    with pytest.raises(ValueError, match="ref_rejected_logps"):
        dpo_loss(z, z, z, torch.zeros(2), beta=0.1)
