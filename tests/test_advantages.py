"""Tests for grpo.advantages against slow, obviously-correct loop references."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from grpo.advantages import group_advantages, zero_variance_groups

SHAPES: list[tuple[int, int]] = [(1, 1), (1, 4), (3, 2), (5, 8), (16, 4), (7, 16)]  # (num_groups, G)
SEEDS: list[int] = [0, 1, 2]


# --------------------------------------------------------------------------- references


def _mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and Bessel-corrected std of a python list; std 0 below 2 values."""
    n = len(values)
    mean = sum(values) / n if n > 0 else 0.0
    if n < 2:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))


def ref_group_advantages(
    rewards: list[float],
    group_size: int,
    std_scaling: bool,
    std_scope: str,
    valid: list[bool],
    eps: float,
) -> list[float]:
    out = [0.0] * len(rewards)
    _, batch_std = _mean_std([r for r, v in zip(rewards, valid) if v])
    for start in range(0, len(rewards), group_size):
        members = [i for i in range(start, start + group_size) if valid[i]]
        mean, group_std = _mean_std([rewards[i] for i in members])
        for i in members:
            adv = rewards[i] - mean
            if std_scaling:
                adv /= (group_std if std_scope == "group" else batch_std) + eps
            out[i] = adv
    return out


def ref_zero_variance_groups(rewards: list[float], group_size: int, valid: list[bool]) -> list[bool]:
    out = []
    for start in range(0, len(rewards), group_size):
        vals = [rewards[i] for i in range(start, start + group_size) if valid[i]]
        out.append(len(vals) < 2 or all(v == vals[0] for v in vals))
    return out


# --------------------------------------------------------------------------- data


def make_rewards(num_groups: int, group_size: int, seed: int, kind: str) -> Tensor:
    """(B,) float64 rewards: binary pass/fail or continuous."""
    gen = torch.Generator().manual_seed(seed)
    b = num_groups * group_size
    if kind == "binary":
        return torch.randint(0, 2, (b,), generator=gen).double()
    return torch.randn(b, generator=gen, dtype=torch.float64) * 2.0 + 0.5


def make_valid(num_groups: int, group_size: int, seed: int) -> Tensor:
    """(B,) bool with a random number of valid members per group; group 0 has 0, group 1 has 1."""
    gen = torch.Generator().manual_seed(1000 + seed)
    rows = []
    for g in range(num_groups):
        k = int(torch.randint(0, group_size + 1, (1,), generator=gen))
        if g == 0:
            k = 0
        elif g == 1:
            k = min(1, group_size)
        row = torch.zeros(group_size, dtype=torch.bool)
        row[torch.randperm(group_size, generator=gen)[:k]] = True
        rows.append(row)
    return torch.cat(rows)


# --------------------------------------------------------------------------- group_advantages


@pytest.mark.parametrize("num_groups,group_size", SHAPES)
@pytest.mark.parametrize("std_scaling", [True, False])
@pytest.mark.parametrize("std_scope", ["group", "batch"])
@pytest.mark.parametrize("kind", ["binary", "continuous"])
@pytest.mark.parametrize("masked", [False, True])
def test_group_advantages_matches_reference(
    num_groups: int, group_size: int, std_scaling: bool, std_scope: str, kind: str, masked: bool
) -> None:
    for seed in SEEDS:
        rewards = make_rewards(num_groups, group_size, seed, kind)
        valid = make_valid(num_groups, group_size, seed) if masked else None
        valid_list = valid.tolist() if valid is not None else [True] * rewards.numel()
        if valid is not None:
            rewards = torch.where(valid, rewards, torch.full_like(rewards, float("nan")))  # ignored
        got = group_advantages(
            rewards, group_size, std_scaling=std_scaling, std_scope=std_scope, valid=valid, eps=1e-6
        )
        want = ref_group_advantages(rewards.tolist(), group_size, std_scaling, std_scope, valid_list, 1e-6)
        assert got.shape == rewards.shape
        assert not torch.isnan(got).any()
        torch.testing.assert_close(got, torch.tensor(want, dtype=torch.float64), rtol=1e-9, atol=1e-9)
        invalid = ~torch.tensor(valid_list)
        assert (got[invalid] == 0).all()


def test_group_advantages_matches_torch_std_formula() -> None:
    """Independent check with torch's own mean/std (unbiased) for the all-valid case."""
    rewards = make_rewards(6, 5, 0, "continuous")
    grouped = rewards.view(6, 5)
    want_group = (grouped - grouped.mean(1, keepdim=True)) / (grouped.std(1, keepdim=True) + 1e-6)
    torch.testing.assert_close(group_advantages(rewards, 5), want_group.reshape(-1))
    want_batch = (grouped - grouped.mean(1, keepdim=True)) / (rewards.std() + 1e-6)
    torch.testing.assert_close(group_advantages(rewards, 5, std_scope="batch"), want_batch.reshape(-1))
    want_dr = grouped - grouped.mean(1, keepdim=True)
    torch.testing.assert_close(group_advantages(rewards, 5, std_scaling=False), want_dr.reshape(-1))


def test_group_advantages_hand_example() -> None:
    rewards = torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 1.0, 0.0])
    got = group_advantages(rewards, 4, eps=0.0)
    # group 0: mean 0.5, unbiased std sqrt(1/3); group 1: mean 0.75, std 0.5
    a0 = 0.5 / math.sqrt(1 / 3)
    want = torch.tensor([a0, -a0, a0, -a0, 0.5, 0.5, 0.5, -1.5])
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(
        group_advantages(rewards, 4, std_scaling=False),
        torch.tensor([0.5, -0.5, 0.5, -0.5, 0.25, 0.25, 0.25, -0.75]),
    )


def test_group_advantages_valid_mask_hand_example() -> None:
    rewards = torch.tensor([1.0, 0.0, float("nan"), 1.0, 5.0, 7.0], dtype=torch.float64)
    valid = torch.tensor([True, True, False, False, True, False])
    got = group_advantages(rewards, 3, valid=valid, std_scaling=False)
    # group 0 valid {1, 0}: mean 0.5; group 1 valid {5}: advantage 0
    torch.testing.assert_close(got, torch.tensor([0.5, -0.5, 0.0, 0.0, 0.0, 0.0], dtype=torch.float64))
    scaled = group_advantages(rewards, 3, valid=valid, eps=0.0)
    s = math.sqrt(0.5)  # unbiased std of {1, 0}
    torch.testing.assert_close(scaled, torch.tensor([0.5 / s, -0.5 / s, 0, 0, 0, 0], dtype=torch.float64))
    # batch scope: std of all valid rewards {1, 0, 5}
    batch_std = torch.tensor([1.0, 0.0, 5.0], dtype=torch.float64).std()
    got_batch = group_advantages(rewards, 3, valid=valid, std_scope="batch", eps=0.0)
    torch.testing.assert_close(got_batch[:2], torch.tensor([0.5, -0.5], dtype=torch.float64) / batch_std)
    assert (got_batch[2:] == 0).all()


def test_group_advantages_no_nan_degenerate() -> None:
    # all equal, single-member groups, nothing valid, float32 with a non-representable constant
    for rewards, g, valid in [
        (torch.full((8,), 0.1, dtype=torch.float32), 4, None),
        (torch.tensor([3.0, 1.0, 2.0]), 1, None),
        (torch.tensor([1.0, 0.0, 1.0, 0.0]), 2, torch.zeros(4, dtype=torch.bool)),
    ]:
        for scope in ("group", "batch"):
            for scaling in (True, False):
                got = group_advantages(rewards, g, valid=valid, std_scope=scope, std_scaling=scaling)
                assert not torch.isnan(got).any()
                assert (got == 0).all(), (rewards, g, scope, scaling, got)


def test_group_advantages_integer_rewards() -> None:
    got = group_advantages(torch.tensor([1, 0, 1, 1]), 2, std_scaling=False)
    assert got.is_floating_point()
    torch.testing.assert_close(got, torch.tensor([0.5, -0.5, 0.0, 0.0]))


@pytest.mark.parametrize("b,g", [(5, 2), (3, 4), (7, 3)])
def test_group_advantages_bad_batch_size(b: int, g: int) -> None:
    with pytest.raises(ValueError, match="multiple of group_size"):
        group_advantages(torch.zeros(b), g)
    with pytest.raises(ValueError, match="multiple of group_size"):
        zero_variance_groups(torch.zeros(b), g)


def test_group_advantages_bad_args() -> None:
    with pytest.raises(ValueError, match="group_size"):
        group_advantages(torch.zeros(4), 0)
    with pytest.raises(ValueError, match="std_scope"):
        group_advantages(torch.zeros(4), 2, std_scope="global")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="valid"):
        group_advantages(torch.zeros(4), 2, valid=torch.ones(3, dtype=torch.bool))
    with pytest.raises(ValueError, match="1-D"):
        group_advantages(torch.zeros(2, 2), 2)


# --------------------------------------------------------------------------- zero_variance_groups


@pytest.mark.parametrize("num_groups,group_size", SHAPES)
@pytest.mark.parametrize("masked", [False, True])
def test_zero_variance_groups_matches_reference(num_groups: int, group_size: int, masked: bool) -> None:
    for seed in SEEDS:
        rewards = make_rewards(num_groups, group_size, seed, "binary")  # binary: many uniform groups
        valid = make_valid(num_groups, group_size, seed) if masked else None
        valid_list = valid.tolist() if valid is not None else [True] * rewards.numel()
        got = zero_variance_groups(rewards, group_size, valid)
        want = ref_zero_variance_groups(rewards.tolist(), group_size, valid_list)
        assert got.dtype == torch.bool
        assert got.tolist() == want


def test_zero_variance_groups_hand_example() -> None:
    rewards = torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.3, 0.2, 5.0, 0.0])
    valid = torch.tensor([True, True, True, True, True, True, True, True, True, False])
    # groups of 2: [1,1] [1,0] [0,0] [0.3,0.2] [5, invalid]
    assert zero_variance_groups(rewards, 2, valid).tolist() == [True, False, True, False, True]
    # invalid member differing from the rest does not create variance
    assert zero_variance_groups(torch.tensor([1.0, 1.0, 9.0]), 3, torch.tensor([True, True, False])).tolist() == [
        True
    ]
