"""Reward shaping: format verifier, DAPO soft overlong punishment, weighted combinations, reward mapping."""

from __future__ import annotations

import pytest

from grpo.config import ConfigError, RewardConfig, TrainConfig, load_config
from grpo.rewards import build_verifier, shape_verdicts
from verifiers import Verdict, get_verifier, verify_batch
from verifiers.combine import weighted
from grpo.rewards import soft_overlong_penalty


@pytest.mark.parametrize("completion,expected", [
    ("<think>3+4 is 7</think> The answer is 7.", "correct"),
    ("  <think>\nstep\n</think>\n\\boxed{7}\n", "correct"),
    ("The answer is 7.", "incorrect"),                             # no think block
    ("<think>7</think>", "incorrect"),                             # no answer after it
    ("<think> </think> 7", "incorrect"),                           # empty thought
    ("<think>a</think> 7 <think>b</think> 8", "incorrect"),        # two blocks
    ("<think>a <think>b</think> 7", "incorrect"),                  # nested / unbalanced
    ("7 <think>a</think> 7", "incorrect"),                         # answer before thinking
    ("<think>a</think></think> 7", "incorrect"),
])
def test_think_format(completion, expected):
    assert get_verifier("think_format").fn(completion, {}).status == expected


def _dapo_reference(n, l_max, l_cache):
    """DAPO eq. 13, written as in the paper."""
    if n <= l_max - l_cache:
        return 0.0
    if l_max - l_cache < n <= l_max:
        return ((l_max - l_cache) - n) / l_cache
    return -1.0


@pytest.mark.parametrize("l_max,l_cache", [(64, 16), (20, 20), (1000, 1)])
def test_soft_overlong_penalty_matches_the_paper(l_max, l_cache):
    for n in range(0, l_max + 5):
        assert soft_overlong_penalty(n, l_max, l_cache) == pytest.approx(_dapo_reference(n, l_max, l_cache))
        assert soft_overlong_penalty(n, l_max, l_cache, 0.5) == pytest.approx(0.5 * _dapo_reference(n, l_max, l_cache))
    with pytest.raises(ValueError, match="buffer_length"):
        soft_overlong_penalty(3, 10, 0)


def test_weighted_combination_sums_rewards_and_takes_the_first_status():
    v = weighted({"integer_boxed": 1.0, "think_format": 0.25})
    out = verify_batch(v, ["<think>a</think> \\boxed{7}", "\\boxed{7}", "<think>a</think> \\boxed{8}"],
                       [{"answer": 7}] * 3)
    assert [o.status for o in out] == ["correct", "correct", "incorrect"]
    assert [o.reward for o in out] == [1.25, 1.0, 0.25]
    assert "think_format=0.25" not in out[0].reason and "think_format=1" in out[0].reason
    # a component that cannot judge makes the sum unverifiable
    out = verify_batch(v, ["\\boxed{7}"], [{"answer": "seven"}])
    assert out[0].status == "unverifiable" and "integer_boxed" in out[0].reason
    with pytest.raises(ValueError, match="unknown verifier 'nope'"):
        weighted({"nope": 1.0})


def test_shape_verdicts_maps_rewards_and_punishes_overlong():
    verdicts = [Verdict("correct", 1.0, "ok"), Verdict("incorrect", 0.0, "no"), Verdict("unverifiable", 0.0, "t/o"),
                Verdict("correct", 1.0, "ok")]
    lengths = [10, 10, 64, 60]
    cfg = RewardConfig(correct=1.0, incorrect=-1.0, overlong_buffer_len=16)
    out = shape_verdicts(verdicts, lengths, cfg, max_new_tokens=64)
    assert [o.status for o in out] == ["correct", "incorrect", "unverifiable", "correct"]
    assert [o.reward for o in out] == pytest.approx([1.0, -1.0, 0.0, 1.0 - 12 / 16])
    assert "overlong -0.750" in out[3].reason
    # defaults change nothing
    assert shape_verdicts(verdicts, lengths, RewardConfig(), 64) == verdicts


def test_reward_config_loads_and_validates(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("reward:\n  verifiers: {integer_boxed: 1.0, think_format: 0.1}\n  overlong_buffer_len: 16\n")
    cfg = load_config(TrainConfig, path, ["reward.incorrect=-0.5"])
    assert cfg.reward.verifiers == {"integer_boxed": 1.0, "think_format": 0.1}
    assert cfg.reward.incorrect == -0.5
    v = build_verifier(cfg.reward, cfg.verifier, "integer_boxed")
    assert [(c.name, w) for c, w in v.components] == [("integer_boxed", 1.0), ("think_format", 0.1)]
    assert build_verifier(RewardConfig(), None, "integer_boxed") is get_verifier("integer_boxed")
    with pytest.raises(ConfigError, match="reward.overlong_buffer_len"):
        load_config(TrainConfig, None, ["reward.overlong_buffer_len=999"])
    with pytest.raises(ConfigError, match="not both"):
        load_config(TrainConfig, path, ["verifier=integer_boxed"])
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(TrainConfig, None, ["reward.verifiers=math"])
    with pytest.raises(ConfigError, match="reward.verifiers.x"):
        load_config(TrainConfig, None, ["reward.verifiers.x=abc"])
