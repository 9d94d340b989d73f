import dataclasses

import pytest

from grpo.config import ConfigError, SFTConfig, TrainConfig, dump_yaml, load_config, parse_overrides


def test_defaults_load_and_round_trip(tmp_path):
    cfg = load_config(TrainConfig)
    path = tmp_path / "c.yaml"
    path.write_text(dump_yaml(cfg))
    assert load_config(TrainConfig, path) == cfg


def test_yaml_then_overrides_win(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("steps: 7\nalgo:\n  kl_coef: 0.1\n  group_size: 4\n")
    cfg = load_config(TrainConfig, path, ["algo.kl_coef=0.05", "optim.lr=3e-6", 'rollout.stop=["\\n\\n"]'])
    assert cfg.steps == 7 and cfg.algo.group_size == 4
    assert cfg.algo.kl_coef == 0.05
    assert cfg.optim.lr == 3e-6  # YAML 1.1 reads 3e-6 as a string; the loader accepts it as a number
    assert cfg.rollout.stop == ("\n\n",)


def test_configs_are_frozen():
    cfg = load_config(TrainConfig)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.steps = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    "override, words",
    [
        (["algo.kl_coeff=0.1"], ["algo.kl_coeff", "kl_coef"]),  # unknown field lists the valid ones
        (["algo.loss_agg_mode=mean"], ["algo.loss_agg_mode", "token-mean"]),
        (["algo.group_size=1"], ["algo.group_size", ">= 2"]),
        (["algo.clip_eps_low=1.5"], ["algo.clip_eps_low"]),
        (["steps=ten"], ["steps", "integer"]),
        (["algo.dynamic_sampling=maybe"], ["algo.dynamic_sampling", "true or false"]),
        (["rollout.temperature=0"], ["rollout.temperature", "> 0"]),
        (["eval.ks=[1,16]", "eval.n=8"], ["eval.ks"]),
        (["steps"], ["key=value"]),
    ],
)
def test_bad_values_name_the_field_and_the_fix(override, words):
    with pytest.raises(ConfigError) as exc:
        load_config(TrainConfig, None, override)
    for word in words:
        assert word in str(exc.value)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(TrainConfig, tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(TrainConfig, bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(TrainConfig, listy)


def test_parse_overrides_nests():
    assert parse_overrides(["a.b.c=1", "a.d=x", "e=true"]) == {"a": {"b": {"c": 1}, "d": "x"}, "e": True}


def test_sft_config_validates():
    with pytest.raises(ConfigError, match=r"config field 'optim.lr' = 0.0: must be > 0"):
        load_config(SFTConfig, None, ["optim.lr=0"])
    with pytest.raises(ConfigError, match=r"unknown config field 'lr'"):  # the optimizer lives in `optim`, as for GRPO
        load_config(SFTConfig, None, ["lr=0.1"])
    assert load_config(SFTConfig).optim.schedule == "cosine"  # SFT's own defaults for the shared OptimConfig


def test_sections_name_their_fields_with_the_section_path():
    with pytest.raises(ConfigError, match=r"config field 'eval.top_p' = 2.0: must be in \(0, 1\]"):
        load_config(TrainConfig, None, ["rollout.engine=hf", "eval.top_p=2"])
    with pytest.raises(ConfigError, match=r"config field 'rollout.max_new_tokens' = 0"):
        load_config(TrainConfig, None, ["rollout.engine=hf", "rollout.max_new_tokens=0"])
