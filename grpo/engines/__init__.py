"""Rollout engines: the contract (``base``), HF ``generate`` (``hf``), vLLM colocated (``vllm``) or as a
server (``vllm_server``), and the one constructor from config (``factory.build_engine``)."""

from grpo.engines.base import Completions, RolloutEngine, SamplingParams, WeightSyncError, vllm_available

__all__ = ["Completions", "RolloutEngine", "SamplingParams", "WeightSyncError", "vllm_available"]
