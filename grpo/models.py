"""Loading models: a model folder, a run folder (its newest checkpoint) or a hub id, in a dtype."""

from __future__ import annotations

from pathlib import Path

import torch

from grpo.checkpoint import latest_checkpoint
from grpo.config import ConfigError, ModelConfig

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def quiet_transformers() -> None:
    """No per-shard progress bars or advisory warnings in our logs."""
    from transformers.utils import logging

    logging.disable_progress_bar()
    logging.set_verbosity_error()


def is_gguf(path: str) -> bool:
    return str(path).lower().endswith(".gguf")


def resolve_model_path(path: str) -> str:
    """A model folder or .gguf file as is; a run folder -> its newest checkpoint; anything else is a hub id."""
    p = Path(path)
    if (p / "config.json").is_file() or (is_gguf(path) and p.is_file()):
        return str(p)
    if p.is_dir():
        ckpt = latest_checkpoint(p)
        if ckpt is None:
            raise ConfigError(
                f"model.path {path!r} is a folder with neither config.json nor a complete checkpoints/step-N; "
                "point it at a saved model or at a run folder that finished a checkpoint"
            )
        return str(ckpt)
    if _looks_local(path):
        raise ConfigError(
            f"model.path {path!r} does not exist. On a fresh clone, `rlvr demo` builds the demo's models under "
            "runs/demo/ (base, sft), and `rlvr tiny-model --output DIR` a random-init one; or give a model folder, "
            "a run folder, or a hub id such as Qwen/Qwen2.5-0.5B-Instruct")
    return path  # a hub id: from_pretrained resolves (or, offline, explains) it


def _looks_local(path: str) -> bool:
    """A path no hub id can be: absolute, relative with ./ or ~, or more than one '/' (ids are org/name)."""
    return path.startswith((".", "/", "~")) or path.count("/") > 1 or path.endswith("/")


def _load_error(cfg: ModelConfig, exc: Exception) -> ConfigError:
    return ConfigError(
        f"cannot load model.path {cfg.path!r} ({exc}). Give a local folder with config.json and weights, "
        "a run folder with checkpoints, or a hub id while online (offline: set HF_HUB_OFFLINE=1 and use a cached id)"
    )


def load_tokenizer(cfg: ModelConfig):
    """The model's tokenizer; it gets a pad token (its EOS) if it lacks one."""
    from transformers import AutoTokenizer

    quiet_transformers()
    if is_gguf(cfg.path):
        from grpo.gguf import load_gguf_tokenizer

        return load_gguf_tokenizer(cfg.path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(cfg.path), trust_remote_code=cfg.trust_remote_code)
    except OSError as exc:
        raise _load_error(cfg, exc) from exc
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_policy(cfg: ModelConfig):
    """(model, tokenizer) for training. A .gguf file is dequantized into a plain float model."""
    from transformers import AutoModelForCausalLM

    if is_gguf(cfg.path):
        from grpo.gguf import load_gguf

        return load_gguf(cfg.path, cfg.dtype)
    tokenizer = load_tokenizer(cfg)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            resolve_model_path(cfg.path), dtype=DTYPES[cfg.dtype], trust_remote_code=cfg.trust_remote_code
        )
    except OSError as exc:
        raise _load_error(cfg, exc) from exc
    return model, tokenizer


def set_threads(threads: int) -> None:
    if threads > 0:
        torch.set_num_threads(threads)
