"""Tests for grpo.losses against slow, obviously-correct loop references."""

from __future__ import annotations

import math
import typing

import pytest
import torch
from torch import Tensor, nn

from grpo.losses import (
    LOSS_AGG_MODES,
    LossAggMode,
    aggregate_loss,
    clipped_surrogate,
    entropy_from_logits,
    kl_k3,
    loss_normalizers,
    policy_loss,
    token_logprobs,
)

SEEDS: list[int] = [0, 1, 2]
BT_SHAPES: list[tuple[int, int]] = [(1, 1), (3, 5), (8, 7), (4, 16)]
F64 = torch.float64


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def make_mask(b: int, t: int, seed: int) -> Tensor:
    """(B, T) bool: right-padded random lengths, row 0 fully masked when B > 1."""
    lengths = torch.randint(0, t + 1, (b,), generator=gen(500 + seed))
    if b > 1:
        lengths[0] = 0
        lengths[-1] = max(int(lengths[-1]), 1)
    return torch.arange(t).unsqueeze(0) < lengths.unsqueeze(1)  # (B, T)


# --------------------------------------------------------------------------- references


def ref_log_softmax_row(z: list[float]) -> list[float]:
    m = max(z)
    lse = m + math.log(sum(math.exp(v - m) for v in z))
    return [v - lse for v in z]


def ref_token_logprobs(logits: Tensor, tokens: Tensor, temperature: float) -> list[list[float]]:
    b, t, _ = logits.shape
    out = []
    for i in range(b):
        row = []
        for j in range(t):
            logp = ref_log_softmax_row([v / temperature for v in logits[i, j].tolist()])
            row.append(logp[int(tokens[i, j])])
        out.append(row)
    return out


def ref_entropy(logits: Tensor, temperature: float) -> list[list[float]]:
    b, t, _ = logits.shape
    out = []
    for i in range(b):
        row = []
        for j in range(t):
            logp = ref_log_softmax_row([v / temperature for v in logits[i, j].tolist()])
            row.append(-sum(math.exp(lp) * lp for lp in logp if lp != -math.inf))
        out.append(row)
    return out


def ref_k3(lp: float, ref: float) -> float:
    return math.exp(ref - lp) - (ref - lp) - 1.0


def ref_clipped_surrogate(
    lp: Tensor, old: Tensor, adv: Tensor, eps_low: float, eps_high: float
) -> tuple[list[list[float]], list[list[bool]], list[list[bool]]]:
    b, t = lp.shape
    loss, low, high = [], [], []
    for i in range(b):
        lrow, lowrow, highrow = [], [], []
        a = float(adv[i])
        for j in range(t):
            r = math.exp(float(lp[i, j]) - float(old[i, j]))
            rc = min(max(r, 1.0 - eps_low), 1.0 + eps_high)
            lrow.append(-min(r * a, rc * a))
            lowrow.append(r < 1.0 - eps_low and a < 0)
            highrow.append(r > 1.0 + eps_high and a > 0)
        loss.append(lrow)
        low.append(lowrow)
        high.append(highrow)
    return loss, low, high


def ref_aggregate(
    loss: Tensor,
    mask: Tensor,
    mode: str,
    num_seqs: float | None = None,
    num_tokens: float | None = None,
    norm_constant: float | None = None,
) -> float:
    b, t = loss.shape
    total, count, nonempty, seq_mean_sum = 0.0, 0, 0, 0.0
    for i in range(b):
        row_sum, row_count = 0.0, 0
        for j in range(t):
            if mask[i, j]:
                row_sum += float(loss[i, j])
                row_count += 1
        total += row_sum
        count += row_count
        if row_count > 0:
            nonempty += 1
            seq_mean_sum += row_sum / row_count
    ns = num_seqs if num_seqs is not None else max(nonempty, 1)
    nt = num_tokens if num_tokens is not None else max(count, 1)
    if mode == "token-mean":
        return total / nt
    if mode == "seq-mean-token-mean":
        return seq_mean_sum / ns
    if mode == "seq-mean-token-sum-norm":
        assert norm_constant is not None
        return total / (ns * norm_constant)
    raise AssertionError(mode)


# --------------------------------------------------------------------------- token_logprobs / entropy


@pytest.mark.parametrize("shape", [(1, 1, 7), (2, 3, 5), (4, 6, 11)])
@pytest.mark.parametrize("temperature", [1.0, 0.7, 1.5])
def test_token_logprobs_matches_reference(shape: tuple[int, int, int], temperature: float) -> None:
    for seed in SEEDS:
        logits = torch.randn(shape, generator=gen(seed), dtype=F64) * 3.0
        tokens = torch.randint(0, shape[2], shape[:2], generator=gen(seed + 10))
        got = token_logprobs(logits, tokens, temperature)
        want = torch.tensor(ref_token_logprobs(logits, tokens, temperature), dtype=F64)
        assert got.shape == shape[:2]
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
        # independent check: log_softmax + gather
        alt = torch.log_softmax(logits / temperature, -1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
        torch.testing.assert_close(got, alt)


def test_token_logprobs_half_precision_upcast() -> None:
    logits = torch.randn(2, 3, 50, generator=gen(0)) * 4
    tokens = torch.randint(0, 50, (2, 3), generator=gen(1))
    got = token_logprobs(logits.bfloat16(), tokens)
    assert got.dtype == torch.float32
    want = token_logprobs(logits.bfloat16().double(), tokens)
    torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-5)


def test_token_logprobs_gradient() -> None:
    logits = torch.randn(2, 3, 4, generator=gen(0), dtype=F64, requires_grad=True)
    tokens = torch.randint(0, 4, (2, 3), generator=gen(1))
    token_logprobs(logits, tokens, 0.5).sum().backward()
    # d log softmax(z/T)[k] / dz = (onehot_k - softmax(z/T)) / T
    want = (nn.functional.one_hot(tokens, 4).double() - torch.softmax(logits.detach() / 0.5, -1)) / 0.5
    torch.testing.assert_close(logits.grad, want)


def test_token_logprobs_bad_args() -> None:
    with pytest.raises(ValueError, match="temperature"):
        token_logprobs(torch.zeros(1, 1, 3), torch.zeros(1, 1, dtype=torch.long), 0.0)
    with pytest.raises(ValueError, match="tokens"):
        token_logprobs(torch.zeros(1, 2, 3), torch.zeros(1, 3, dtype=torch.long))


@pytest.mark.parametrize("shape", [(1, 1, 7), (2, 3, 5), (4, 6, 11)])
@pytest.mark.parametrize("temperature", [1.0, 0.6])
def test_entropy_matches_reference(shape: tuple[int, int, int], temperature: float) -> None:
    for seed in SEEDS:
        logits = torch.randn(shape, generator=gen(seed), dtype=F64) * 2.0
        got = entropy_from_logits(logits, temperature)
        want = torch.tensor(ref_entropy(logits, temperature), dtype=F64)
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
        assert (got >= 0).all() and (got <= math.log(shape[2]) + 1e-9).all()


def test_entropy_known_values_and_inf_logits() -> None:
    uniform = torch.zeros(1, 2, 8, dtype=F64)
    torch.testing.assert_close(entropy_from_logits(uniform), torch.full((1, 2), math.log(8), dtype=F64))
    logits = torch.tensor([[[0.0, 0.0, -math.inf, -math.inf]]], dtype=F64)  # masked vocab entries
    got = entropy_from_logits(logits)
    assert not torch.isnan(got).any()
    torch.testing.assert_close(got, torch.tensor([[math.log(2)]], dtype=F64))
    one_hot = torch.tensor([[[0.0, -math.inf, -math.inf]]], dtype=F64)
    assert float(entropy_from_logits(one_hot)) == 0.0


# --------------------------------------------------------------------------- kl_k3


@pytest.mark.parametrize("shape", BT_SHAPES)
def test_kl_k3_matches_reference(shape: tuple[int, int]) -> None:
    for seed in SEEDS:
        lp = -torch.rand(shape, generator=gen(seed), dtype=F64) * 5
        ref = lp + torch.randn(shape, generator=gen(seed + 1), dtype=F64)
        got = kl_k3(lp, ref)
        want = torch.tensor(
            [[ref_k3(float(lp[i, j]), float(ref[i, j])) for j in range(shape[1])] for i in range(shape[0])],
            dtype=F64,
        )
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
        assert (got >= 0).all()


def test_kl_k3_nonnegative_zero_when_equal_and_clamped() -> None:
    lp = -torch.rand(50, 40, generator=gen(3)) * 10  # float32
    assert (kl_k3(lp, lp) == 0).all()
    for scale in (1e-8, 1e-6, 1e-4, 1e-2):
        near = lp + scale * torch.randn(lp.shape, generator=gen(4))
        assert (kl_k3(lp, near) >= 0).all()
        assert (kl_k3(near, lp) >= 0).all()
    # log-ratio beyond +-20 is clamped: finite and bounded
    lp = torch.tensor([[0.0, -100.0, 0.0]], dtype=F64)
    ref = torch.tensor([[-100.0, 0.0, 5.0]], dtype=F64)
    got = kl_k3(lp, ref)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got[0, 0], torch.tensor(math.exp(-20) + 20 - 1, dtype=F64))
    torch.testing.assert_close(got[0, 1], torch.tensor(math.exp(20) - 20 - 1, dtype=F64))
    torch.testing.assert_close(got[0, 2], torch.tensor(math.exp(5) - 5 - 1, dtype=F64))


def test_kl_k3_gradient() -> None:
    lp = (-torch.rand(3, 4, generator=gen(0), dtype=F64)).requires_grad_(True)
    ref = lp.detach() + 0.5 * torch.randn(3, 4, generator=gen(1), dtype=F64)
    kl_k3(lp, ref).sum().backward()
    # d/dlp [exp(ref - lp) - (ref - lp) - 1] = 1 - exp(ref - lp)
    torch.testing.assert_close(lp.grad, 1 - torch.exp(ref - lp.detach()))


# --------------------------------------------------------------------------- clipped_surrogate


@pytest.mark.parametrize("shape", BT_SHAPES)
@pytest.mark.parametrize("eps", [(0.2, 0.2), (0.2, 0.28), (0.1, 0.3)])
def test_clipped_surrogate_matches_reference(shape: tuple[int, int], eps: tuple[float, float]) -> None:
    eps_low, eps_high = eps
    saw_low = saw_high = False
    for seed in SEEDS:
        old = -torch.rand(shape, generator=gen(seed), dtype=F64) * 4
        lp = old + 0.4 * torch.randn(shape, generator=gen(seed + 1), dtype=F64)
        adv = torch.randn(shape[0], generator=gen(seed + 2), dtype=F64)
        adv[0] = 0.0
        lp.requires_grad_(True)
        loss, low, high = clipped_surrogate(lp, old, adv, clip_eps_low=eps_low, clip_eps_high=eps_high)
        want_loss, want_low, want_high = ref_clipped_surrogate(lp.detach(), old, adv, eps_low, eps_high)
        torch.testing.assert_close(loss, torch.tensor(want_loss, dtype=F64), rtol=1e-10, atol=1e-12)
        assert low.dtype == torch.bool and high.dtype == torch.bool
        assert low.tolist() == want_low
        assert high.tolist() == want_high
        saw_low |= bool(low.any())
        saw_high |= bool(high.any())
        # the clip masks are exactly the tokens whose gradient the clip cuts
        loss.sum().backward()
        ratio = torch.exp(lp.detach() - old)
        want_grad = torch.where(low | high, torch.zeros_like(ratio), -ratio * adv.unsqueeze(-1))
        torch.testing.assert_close(lp.grad, want_grad)
    if shape[0] * shape[1] >= 20:
        assert saw_low and saw_high  # the test exercised both clip sides


def test_clip_higher_boundary() -> None:
    """ratio 1.25 with A > 0 is clipped at eps_high = 0.2 but not at 0.28 (DAPO clip-higher)."""
    lp = torch.tensor([[math.log(1.25)]], dtype=F64, requires_grad=True)
    old = torch.zeros(1, 1, dtype=F64)
    adv = torch.tensor([2.0], dtype=F64)

    loss, low, high = clipped_surrogate(lp, old, adv, clip_eps_low=0.2, clip_eps_high=0.2)
    assert bool(high[0, 0]) and not bool(low[0, 0])
    torch.testing.assert_close(loss, torch.tensor([[-1.2 * 2.0]], dtype=F64))
    (g,) = torch.autograd.grad(loss.sum(), lp)
    assert float(g) == 0.0

    loss, low, high = clipped_surrogate(lp, old, adv, clip_eps_low=0.2, clip_eps_high=0.28)
    assert not bool(high[0, 0]) and not bool(low[0, 0])
    torch.testing.assert_close(loss, torch.tensor([[-1.25 * 2.0]], dtype=F64))
    (g,) = torch.autograd.grad(loss.sum(), lp)
    torch.testing.assert_close(g, torch.tensor([[-1.25 * 2.0]], dtype=F64))

    # negative advantage: a high ratio is never clipped, a low one is (at 1 - eps_low)
    neg = torch.tensor([-1.0], dtype=F64)
    loss, low, high = clipped_surrogate(lp, old, neg, clip_eps_low=0.2, clip_eps_high=0.2)
    assert not bool(high[0, 0]) and not bool(low[0, 0])
    torch.testing.assert_close(loss, torch.tensor([[1.25]], dtype=F64))
    lp_low = torch.tensor([[math.log(0.75)]], dtype=F64)
    loss, low, high = clipped_surrogate(lp_low, old, neg, clip_eps_low=0.2, clip_eps_high=0.2)
    assert bool(low[0, 0]) and not bool(high[0, 0])
    torch.testing.assert_close(loss, torch.tensor([[0.8]], dtype=F64))
    loss, low, _ = clipped_surrogate(lp_low, old, neg, clip_eps_low=0.3, clip_eps_high=0.2)
    assert not bool(low[0, 0])
    torch.testing.assert_close(loss, torch.tensor([[0.75]], dtype=F64))


def test_clipped_surrogate_token_level_advantages() -> None:
    old = -torch.rand(3, 4, generator=gen(0), dtype=F64)
    lp = old + 0.3 * torch.randn(3, 4, generator=gen(1), dtype=F64)
    adv = torch.randn(3, generator=gen(2), dtype=F64)
    seq = clipped_surrogate(lp, old, adv, clip_eps_low=0.2, clip_eps_high=0.28)
    tok = clipped_surrogate(lp, old, adv.unsqueeze(-1).expand(3, 4), clip_eps_low=0.2, clip_eps_high=0.28)
    for a, b in zip(seq, tok):
        torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="advantages"):
        clipped_surrogate(lp, old, adv[:2], clip_eps_low=0.2, clip_eps_high=0.2)
    with pytest.raises(ValueError, match="clip"):
        clipped_surrogate(lp, old, adv, clip_eps_low=-0.1, clip_eps_high=0.2)


# --------------------------------------------------------------------------- aggregate_loss


def test_loss_agg_modes_match_literal() -> None:
    assert set(LOSS_AGG_MODES) == set(typing.get_args(LossAggMode))
    assert len(LOSS_AGG_MODES) == 3


@pytest.mark.parametrize("shape", BT_SHAPES)
@pytest.mark.parametrize("mode", LOSS_AGG_MODES)
@pytest.mark.parametrize("float_mask", [False, True])
def test_aggregate_loss_matches_reference(shape: tuple[int, int], mode: str, float_mask: bool) -> None:
    b, t = shape
    for seed in SEEDS:
        loss = torch.randn(shape, generator=gen(seed), dtype=F64)
        mask = make_mask(b, t, seed)
        loss = torch.where(mask, loss, torch.full_like(loss, float("nan")))  # padding must not leak
        m = mask.double() if float_mask else mask
        got = aggregate_loss(loss, m, mode, norm_constant=float(t))  # type: ignore[arg-type]
        want = ref_aggregate(loss, mask, mode, norm_constant=float(t))
        assert got.dim() == 0
        assert math.isclose(float(got), want, rel_tol=1e-10, abs_tol=1e-12), (float(got), want)
        # explicit normalisers override the counts
        got = aggregate_loss(loss, m, mode, num_seqs=3.5, num_tokens=17.0, norm_constant=9.0)  # type: ignore[arg-type]
        want = ref_aggregate(loss, mask, mode, num_seqs=3.5, num_tokens=17.0, norm_constant=9.0)
        assert math.isclose(float(got), want, rel_tol=1e-10, abs_tol=1e-12), (float(got), want)


def test_aggregate_loss_hand_example() -> None:
    loss = torch.tensor([[1.0, 2.0, 3.0], [4.0, 99.0, 99.0], [99.0, 99.0, 99.0]])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0], [0, 0, 0]])
    assert float(aggregate_loss(loss, mask, "token-mean")) == pytest.approx(10 / 4)
    assert float(aggregate_loss(loss, mask, "seq-mean-token-mean")) == pytest.approx((6 / 3 + 4 / 1) / 2)
    assert float(aggregate_loss(loss, mask, "seq-mean-token-sum-norm", norm_constant=3)) == pytest.approx(
        10 / (2 * 3)
    )
    assert loss_normalizers(mask) == (2.0, 4.0)
    assert loss_normalizers(torch.zeros(2, 3)) == (1.0, 1.0)


def test_aggregate_loss_all_masked_is_zero() -> None:
    loss = torch.randn(3, 4, generator=gen(0), requires_grad=True)
    mask = torch.zeros(3, 4, dtype=torch.bool)
    for mode in LOSS_AGG_MODES:
        out = aggregate_loss(loss, mask, mode, norm_constant=4)  # type: ignore[arg-type]
        assert out.item() == 0.0
        (g,) = torch.autograd.grad(out, loss)
        assert (g == 0).all()


def test_aggregate_loss_errors() -> None:
    loss, mask = torch.zeros(2, 3), torch.ones(2, 3)
    with pytest.raises(ValueError) as info:
        aggregate_loss(loss, mask, "sequence-mean")  # type: ignore[arg-type]
    msg = str(info.value)
    assert "unknown loss aggregation mode 'sequence-mean'" in msg
    for name in LOSS_AGG_MODES:
        assert name in msg
    with pytest.raises(ValueError, match="norm_constant"):
        aggregate_loss(loss, mask, "seq-mean-token-sum-norm")
    with pytest.raises(ValueError, match="num_tokens"):
        aggregate_loss(loss, mask, "token-mean", num_tokens=0)
    with pytest.raises(ValueError, match="shape|\\(B, T\\)"):
        aggregate_loss(loss, torch.ones(2, 4), "token-mean")


# --------------------------------------------------------------------------- gradient accumulation


class TinyPolicy(nn.Module):
    """Embedding -> tanh -> Linear language-model head: a policy with real parameters."""

    def __init__(self, vocab: int, hidden: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, hidden)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, input_ids: Tensor) -> Tensor:
        return self.head(torch.tanh(self.embed(input_ids)))  # (B, T, V)


def _grads(model: nn.Module) -> list[Tensor]:
    return [p.grad.detach().clone() for p in model.parameters()]


SPLITS: list[list[int]] = [[1, 1, 1, 1, 1, 1], [2, 2, 2], [1, 3, 2], [4, 2], [5, 1], [6]]


@pytest.mark.parametrize("mode", LOSS_AGG_MODES)
@pytest.mark.parametrize("kl_coef", [0.0, 0.05])
def test_micro_batch_gradients_equal_full_batch(mode: str, kl_coef: float) -> None:
    torch.manual_seed(0)
    b, t, vocab, hidden, group = 6, 7, 11, 5, 3
    model = TinyPolicy(vocab, hidden).double()
    input_ids = torch.randint(0, vocab, (b, t), generator=gen(1))
    targets = torch.randint(0, vocab, (b, t), generator=gen(2))
    mask = make_mask(b, t, 3)
    mask[2, :] = True  # make lengths differ a lot: one full row, one empty row (row 0)
    with torch.no_grad():
        base = token_logprobs(model(input_ids), targets)  # (B, T)
    old = base + 0.3 * torch.randn(b, t, generator=gen(4), dtype=F64)
    ref = base + 0.3 * torch.randn(b, t, generator=gen(5), dtype=F64)
    from grpo.advantages import group_advantages

    adv = group_advantages(torch.randn(b, generator=gen(6), dtype=F64), group)
    num_seqs, num_tokens = loss_normalizers(mask)
    kwargs = dict(
        clip_eps_low=0.2,
        clip_eps_high=0.28,
        loss_agg_mode=mode,
        kl_coef=kl_coef,
        ref_logprobs=None,
        norm_constant=float(t),
    )

    def run(rows: slice, **norms: float) -> tuple[Tensor, dict[str, float]]:
        lp = token_logprobs(model(input_ids[rows]), targets[rows])
        kw = dict(kwargs, ref_logprobs=ref[rows] if kl_coef > 0 else None, **norms)
        return policy_loss(lp, old[rows], adv[rows], mask[rows], **kw)  # type: ignore[arg-type]

    model.zero_grad()
    full_loss, full_metrics = run(slice(0, b))
    full_loss.backward()
    full_grads = _grads(model)
    assert full_metrics["clip_frac"] > 0  # the clip path is exercised
    assert all(g.abs().sum() > 0 for g in full_grads)

    for split in SPLITS:
        assert sum(split) == b
        model.zero_grad()
        total = 0.0
        start = 0
        for size in split:
            loss, _ = run(slice(start, start + size), num_seqs=num_seqs, num_tokens=num_tokens)
            loss.backward()
            total += loss.item()
            start += size
        assert math.isclose(total, full_loss.item(), rel_tol=1e-10, abs_tol=1e-12), (split, total)
        for g_micro, g_full in zip(_grads(model), full_grads):
            assert torch.allclose(g_micro, g_full, rtol=1e-9, atol=1e-12), split

    # without the full-batch normalisers an uneven split does NOT reproduce the gradient
    model.zero_grad()
    start = 0
    for size in [1, 3, 2]:
        loss, _ = run(slice(start, start + size))
        loss.backward()
        start += size
    assert not all(torch.allclose(g, f, rtol=1e-6) for g, f in zip(_grads(model), full_grads))


# --------------------------------------------------------------------------- policy_loss


@pytest.mark.parametrize("mode", LOSS_AGG_MODES)
def test_policy_loss_with_kl_equals_surrogate_plus_k3(mode: str) -> None:
    b, t = 5, 6
    old = -torch.rand(b, t, generator=gen(0), dtype=F64) * 3
    lp = (old + 0.3 * torch.randn(b, t, generator=gen(1), dtype=F64)).requires_grad_(True)
    ref = old + 0.5 * torch.randn(b, t, generator=gen(2), dtype=F64)
    adv = torch.randn(b, generator=gen(3), dtype=F64)
    mask = make_mask(b, t, 4)
    common = dict(clip_eps_low=0.2, clip_eps_high=0.28, loss_agg_mode=mode, norm_constant=float(t))
    coef = 0.07

    loss, metrics = policy_loss(lp, old, adv, mask, kl_coef=coef, ref_logprobs=ref, **common)  # type: ignore[arg-type]
    surr, _, _ = clipped_surrogate(lp, old, adv, clip_eps_low=0.2, clip_eps_high=0.28)
    k3 = kl_k3(lp, ref)
    want = ref_aggregate((surr + coef * k3).detach(), mask, mode, norm_constant=float(t))
    assert math.isclose(loss.item(), want, rel_tol=1e-10)
    want_lin = ref_aggregate(surr.detach(), mask, mode, norm_constant=float(t)) + coef * ref_aggregate(
        k3.detach(), mask, mode, norm_constant=float(t)
    )
    assert math.isclose(loss.item(), want_lin, rel_tol=1e-10)

    no_kl, _ = policy_loss(lp, old, adv, mask, **common)  # type: ignore[arg-type]
    assert not math.isclose(no_kl.item(), loss.item(), rel_tol=1e-6)  # the KL term is really added
    assert math.isclose(no_kl.item(), ref_aggregate(surr.detach(), mask, mode, norm_constant=float(t)), rel_tol=1e-10)
    # a reference with kl_coef = 0 is only monitored
    monitored, mon_metrics = policy_loss(lp, old, adv, mask, ref_logprobs=ref, **common)  # type: ignore[arg-type]
    assert monitored.item() == no_kl.item()
    k3_mean = float(k3.detach()[mask].mean())
    assert mon_metrics["kl"] == pytest.approx(k3_mean, rel=1e-10)
    assert metrics["kl"] == pytest.approx(k3_mean, rel=1e-10)


def test_policy_loss_errors() -> None:
    lp = torch.zeros(2, 3)
    mask = torch.ones(2, 3)
    common = dict(clip_eps_low=0.2, clip_eps_high=0.2, loss_agg_mode="token-mean")
    with pytest.raises(ValueError, match="ref_logprobs"):
        policy_loss(lp, lp, torch.zeros(2), mask, kl_coef=0.1, **common)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="kl_coef"):
        policy_loss(lp, lp, torch.zeros(2), mask, kl_coef=-0.1, ref_logprobs=lp, **common)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown loss aggregation mode"):
        policy_loss(
            lp, lp, torch.zeros(2), mask, clip_eps_low=0.2, clip_eps_high=0.2, loss_agg_mode="x"  # type: ignore[arg-type]
        )


def test_policy_loss_metrics_hand_example() -> None:
    nan = float("nan")
    # ratios: row 0 (A = +1): 1.25 (clipped high at 0.2), 1.0, 0.7 (A > 0: not clipped)
    #         row 1 (A = -1): 1.5 (A < 0: not clipped), 0.5 (clipped low), padding
    ratios = [[1.25, 1.0, 0.7], [1.5, 0.5, 1.0]]
    old = torch.tensor([[-1.0, -2.0, -0.5], [-1.5, -0.3, -1.0]], dtype=F64)
    lp = old + torch.log(torch.tensor(ratios, dtype=F64))
    lp[1, 2] = nan  # padding garbage must not leak
    adv = torch.tensor([1.0, -1.0], dtype=F64)
    mask = torch.tensor([[True, True, True], [True, True, False]])
    ref = lp.clone()
    ref[0, 1] = lp[0, 1] + math.log(2.0)  # one token with k3 = 2 - ln 2 - 1

    loss, m = policy_loss(
        lp, old, adv, mask, clip_eps_low=0.2, clip_eps_high=0.2, loss_agg_mode="token-mean", ref_logprobs=ref
    )
    # per-token losses: -1.2, -1.0, -0.7, +1.5, +0.8
    assert loss.item() == pytest.approx((-1.2 - 1.0 - 0.7 + 1.5 + 0.8) / 5)
    assert m["clip_frac"] == pytest.approx(2 / 5)
    assert m["clip_frac_low"] == pytest.approx(1 / 5)
    assert m["clip_frac_high"] == pytest.approx(1 / 5)
    assert m["ratio_mean"] == pytest.approx((1.25 + 1.0 + 0.7 + 1.5 + 0.5) / 5)
    assert m["ratio_max"] == pytest.approx(1.5)
    assert m["num_tokens"] == 5.0
    assert m["kl"] == pytest.approx((1 - math.log(2)) / 5)
    assert all(isinstance(v, float) for v in m.values())
    assert set(m) == {"clip_frac", "clip_frac_low", "clip_frac_high", "ratio_mean", "ratio_max", "kl", "num_tokens"}

    _, m = policy_loss(lp, old, adv, mask, clip_eps_low=0.2, clip_eps_high=0.2, loss_agg_mode="token-mean")
    assert m["kl"] == 0.0

    # ratio_max ignores padding even when every real ratio is below 1
    low_lp = old - 0.5
    low_lp[1, 2] = old[1, 2] + 3.0  # padding ratio e^3
    _, m = policy_loss(low_lp, old, adv, mask, clip_eps_low=0.9, clip_eps_high=0.2, loss_agg_mode="token-mean")
    assert m["ratio_max"] == pytest.approx(math.exp(-0.5))


def test_policy_loss_clip_frac_is_token_weighted() -> None:
    # row 0: 1 real token, clipped; row 1: 4 real tokens, none clipped
    old = torch.zeros(2, 4, dtype=F64)
    lp = torch.zeros(2, 4, dtype=F64)
    lp[0, 0] = math.log(2.0)  # ratio 2 with A > 0 -> clipped high
    mask = torch.tensor([[True, False, False, False], [True, True, True, True]])
    adv = torch.tensor([1.0, 1.0], dtype=F64)
    for mode in LOSS_AGG_MODES:
        _, m = policy_loss(
            lp, old, adv, mask,
            clip_eps_low=0.2, clip_eps_high=0.2, loss_agg_mode=mode, norm_constant=4,  # type: ignore[arg-type]
        )
        assert m["clip_frac"] == pytest.approx(1 / 5)  # a sequence-weighted mean would be 1/2
        assert m["clip_frac_high"] == pytest.approx(1 / 5)
        assert m["clip_frac_low"] == 0.0


def test_policy_loss_empty_mask() -> None:
    lp = torch.zeros(2, 3, dtype=F64, requires_grad=True)
    mask = torch.zeros(2, 3, dtype=torch.bool)
    loss, m = policy_loss(
        lp, lp.detach() - 1.0, torch.ones(2, dtype=F64), mask,
        clip_eps_low=0.2, clip_eps_high=0.2, loss_agg_mode="token-mean", ref_logprobs=lp.detach() + 1, kl_coef=0.1,
    )
    assert loss.item() == 0.0
    assert m == {
        "clip_frac": 0.0, "clip_frac_low": 0.0, "clip_frac_high": 0.0,
        "ratio_mean": 1.0, "kl": 0.0, "num_tokens": 0.0, "ratio_max": 1.0,
    }
