"""Loading models: a model folder, a LoRA adapter folder, a run folder (its newest checkpoint) or a hub id,
in a dtype; the reference policy; the CPU's bfloat16 support; peak memory."""

from __future__ import annotations

import ctypes
import dataclasses
import os
import platform
import resource
import sys
from pathlib import Path

import torch

from grpo.attention import use_cpu_gqa_attention
from grpo.checkpoint import latest_checkpoint
from grpo.config import ConfigError, ModelConfig
from grpo.lora import AdaptersDisabled, adapter_base_path, apply_lora, attach_adapter, is_adapter_folder, is_peft_model
from grpo.precision import resolve_compute_dtype, use_compute_dtype

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def quiet_transformers() -> None:
    """No per-shard progress bars or advisory warnings in our logs."""
    from transformers.utils import logging

    logging.disable_progress_bar()
    logging.set_verbosity_error()


def is_gguf(path: str) -> bool:
    return str(path).lower().endswith(".gguf")


def resolve_model_path(path: str) -> str:
    """A model or adapter folder or .gguf file as is; a run folder -> its newest checkpoint; anything else is a hub id."""
    p = Path(path)
    if (p / "config.json").is_file() or is_adapter_folder(p) or (is_gguf(path) and p.is_file()):
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
    """(model, tokenizer) for training, in ``cfg.dtype``, on the CPU.

    A .gguf file is dequantized into a plain float model. With ``cfg.lora``, the model gets fresh
    adapters (only they train), or, when ``cfg.path`` is a LoRA checkpoint, that checkpoint's adapters
    on their base model; without, a LoRA checkpoint is loaded merged into a plain model.
    """
    check_dtype_supported(cfg.dtype)
    if is_gguf(cfg.path):
        from grpo.gguf import load_gguf

        model, tokenizer = load_gguf(cfg.path, cfg.dtype)
        resolved = cfg.path
    else:
        tokenizer = load_tokenizer(cfg)
        resolved = resolve_model_path(cfg.path)
        model = _load_base(adapter_base_path(resolved) if is_adapter_folder(resolved) else resolved, cfg)
    use_cpu_gqa_attention(model)  # before any adapters wrap it; the same outputs, fewer copies on the CPU
    if is_adapter_folder(resolved):
        model = attach_adapter(model, resolved, cfg.lora)
    elif cfg.lora is not None:
        local = Path(resolved).exists()  # a local base is recorded by absolute path: any working directory finds it
        model = apply_lora(model, cfg.lora, str(Path(resolved).resolve()) if local else resolved)
    if cfg.gradient_checkpointing:
        # non-reentrant: gradients reach the adapters even though the frozen embeddings' outputs need none
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    compute = compute_dtype(cfg, sum(p.numel() for p in model.parameters()))
    if compute is not None:
        use_compute_dtype(model, compute)
    return model, tokenizer


def compute_dtype(cfg: ModelConfig, num_params: int | None) -> torch.dtype | None:
    """The autocast dtype ``cfg.compute_dtype`` stands for on this process's device (None: none)."""
    from grpo import distributed

    device_type = torch.device(distributed.current().device).type
    try:
        return resolve_compute_dtype(cfg.compute_dtype, cfg.dtype, num_params or 0, device_type,
                                     cpu_has_bf16(_read_cpuinfo()))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def use_classifier_compute_dtype(model: torch.nn.Module, cfg: ModelConfig) -> torch.dtype | None:
    """``cfg.compute_dtype`` for a reward model or critic (a one-output ``*ForSequenceClassification``),
    decided as for the policy (``auto``: bfloat16 for a model of >= 30M parameters on native hardware):
    its backbone computes under autocast, while its score / value head, called after the backbone, stays
    float32, so a score keeps float32 precision in its last product. Returns the dtype (None: none)."""
    backbone = getattr(model, getattr(model, "base_model_prefix", ""), None)
    if not isinstance(backbone, torch.nn.Module):
        return None
    compute = compute_dtype(cfg, sum(p.numel() for p in model.parameters()))
    if compute is not None:
        use_compute_dtype(backbone, compute)
    return compute


def _load_base(path: str, cfg: ModelConfig):
    """A plain causal LM from a folder, hub id or .gguf file."""
    from transformers import AutoModelForCausalLM

    if is_gguf(path):
        from grpo.gguf import load_gguf

        return load_gguf(path, cfg.dtype)[0]
    try:
        return AutoModelForCausalLM.from_pretrained(path, dtype=DTYPES[cfg.dtype],
                                                    trust_remote_code=cfg.trust_remote_code)
    except OSError as exc:
        raise _load_error(dataclasses.replace(cfg, path=path), exc) from exc


def reference_policy(model, cfg: ModelConfig):
    """The frozen reference for a KL term: a LoRA policy with its adapters disabled (no second copy), else
    a second copy of ``cfg``'s model."""
    if is_peft_model(model):
        return AdaptersDisabled(model)
    reference, _ = load_policy(dataclasses.replace(cfg, lora=None, gradient_checkpointing=False))
    return reference.eval().requires_grad_(False)


# ---------------------------------------------------------------- bfloat16 on the CPU

def cpu_has_bf16(cpuinfo: str) -> bool | None:
    """Whether ``/proc/cpuinfo`` text lists native bfloat16 instructions (x86: avx512_bf16 or amx_bf16;
    Arm: bf16); None when it lists no flags at all (another OS, an unusual kernel: cannot tell)."""
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() in ("flags", "Features"):
            flags.update(value.split())
    if not flags:
        return None
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


def _read_cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def check_dtype_supported(dtype: str) -> None:
    """Refuse bfloat16 on a CPU without bfloat16 instructions: torch would run every bf16 matmul through
    float32 conversions, slower than float32 and less exact. (The policy trains on the CPU.)"""
    if dtype == "bfloat16" and cpu_has_bf16(_read_cpuinfo()) is False:
        raise ConfigError(
            "config field 'model.dtype' = 'bfloat16': this CPU has no bfloat16 instructions (neither avx512_bf16 "
            "nor amx_bf16 among the flags in /proc/cpuinfo), so torch would emulate bf16, slower than float32 and "
            "less exact. Set model.dtype=float32 (or train on a CPU that has them)")


# ---------------------------------------------------------------- memory

def peak_memory_metrics() -> dict[str, float]:
    """``memory/peak_rss_gb``: the process's peak resident memory so far (GiB); with CUDA in use also
    ``memory/cuda_peak_gb``: the peak of memory allocated by torch on the current GPU so far."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    out = {"memory/peak_rss_gb": peak / (2**30 if sys.platform == "darwin" else 2**20)}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["memory/cuda_peak_gb"] = torch.cuda.max_memory_allocated() / 2**30
    return out


def setup_cpu(threads: int) -> None:
    """Before a command computes: torch's threads (``threads`` > 0; 0 keeps torch's default) and the
    host allocator's policy (``keep_freed_memory``)."""
    if threads > 0:
        torch.set_num_threads(threads)
    keep_freed_memory()


# glibc's mallopt parameters
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4


def keep_freed_memory() -> bool:
    """Keep the memory torch frees in this process for its next tensors (glibc), instead of returning it.

    glibc serves every block over 32 MB with a fresh ``mmap`` and unmaps it when freed, so each pass's
    activations and logits (hundreds of MB for a real model) are page-faulted and zeroed by the kernel
    again at every micro-batch: measured on 2 cores, a third of a SmolLM2-135M log-prob pass went there
    (bench/RESULTS.md). With ``mmap`` off and no trimming, freed blocks are reused; the resident size
    then stays at its peak, which is what a training step reaches anyway. ``RLVR_SYSTEM_MALLOC=1`` (or a
    libc other than glibc) leaves the allocator as it is. Returns whether the policy was applied.
    """
    if os.environ.get("RLVR_SYSTEM_MALLOC", "") not in ("", "0") or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
