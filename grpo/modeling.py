"""Loading the policy, batching prompt+completion pairs, and per-token log-probs."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from grpo.config import ConfigError, ModelConfig
from grpo.losses import entropy_from_logits, token_logprobs

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def quiet_transformers() -> None:
    """No per-shard progress bars or advisory warnings in our logs."""
    from transformers.utils import logging

    logging.disable_progress_bar()
    logging.set_verbosity_error()


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete ``checkpoints/step-N`` of a run folder, or None."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return None
    steps = []
    for child in root.iterdir():
        m = re.fullmatch(r"step-(\d+)", child.name)
        if m and (child / "COMPLETE").is_file():
            steps.append((int(m.group(1)), child))
    return max(steps)[1] if steps else None


def resolve_model_path(path: str) -> str:
    """A model folder as is; a run folder -> its newest checkpoint; anything else is a hub id."""
    p = Path(path)
    if (p / "config.json").is_file():
        return str(p)
    if p.is_dir():
        ckpt = latest_checkpoint(p)
        if ckpt is None:
            raise ConfigError(
                f"model.path {path!r} is a folder with neither config.json nor a complete checkpoints/step-N; "
                "point it at a saved model or at a run folder that finished a checkpoint"
            )
        return str(ckpt)
    return path  # a hub id: from_pretrained resolves (or, offline, explains) it


def load_policy(cfg: ModelConfig):
    """(model, tokenizer) for training. The tokenizer gets a pad token if it lacks one."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    quiet_transformers()
    path = resolve_model_path(cfg.path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=cfg.trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(
            path, dtype=DTYPES[cfg.dtype], trust_remote_code=cfg.trust_remote_code
        )
    except OSError as exc:
        raise ConfigError(
            f"cannot load model.path {cfg.path!r} ({exc}). Give a local folder with config.json and weights, "
            "a run folder with checkpoints, or a hub id while online (offline: set HF_HUB_OFFLINE=1 and use a cached id)"
        ) from exc
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def set_threads(threads: int) -> None:
    if threads > 0:
        torch.set_num_threads(threads)


@dataclass
class PackedBatch:
    """Prompts left-padded to width P, completions right-padded to width T, side by side."""

    input_ids: torch.Tensor  # (B, P + T)
    attention_mask: torch.Tensor  # (B, P + T)
    position_ids: torch.Tensor  # (B, P + T)
    completion_ids: torch.Tensor  # (B, T)
    completion_mask: torch.Tensor  # (B, T) 1 on real completion tokens

    def to(self, device: torch.device | str) -> "PackedBatch":
        return PackedBatch(*(t.to(device) for t in (self.input_ids, self.attention_mask, self.position_ids,
                                                      self.completion_ids, self.completion_mask)))


def pack(prompts: Sequence[Sequence[int]], completions: Sequence[Sequence[int]], pad_id: int) -> PackedBatch:
    if len(prompts) != len(completions):
        raise ValueError(f"pack: {len(prompts)} prompts but {len(completions)} completions")
    width_p = max(len(p) for p in prompts)
    width_c = max(1, max(len(c) for c in completions))
    batch = len(prompts)
    input_ids = torch.full((batch, width_p + width_c), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((batch, width_p + width_c), dtype=torch.long)
    for row, (p, c) in enumerate(zip(prompts, completions)):
        input_ids[row, width_p - len(p) : width_p] = torch.tensor(p, dtype=torch.long)
        input_ids[row, width_p : width_p + len(c)] = torch.tensor(c, dtype=torch.long)
        attention_mask[row, width_p - len(p) : width_p + len(c)] = 1
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)  # positions start at 0 after left padding
    return PackedBatch(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids,
        completion_ids=input_ids[:, width_p:],
        completion_mask=attention_mask[:, width_p:].clone(),
    )


def completion_logprobs(model: torch.nn.Module, batch: PackedBatch, temperature: float = 1.0,
                        with_entropy: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-token log-probs (B, T) of the completion tokens, and optionally their entropy (B, T).

    Only the logits that predict completion tokens are computed (``logits_to_keep``),
    so the LM head never runs over the prompt.
    """
    width_c = batch.completion_ids.shape[1]
    out = model(
        input_ids=batch.input_ids,
        attention_mask=batch.attention_mask,
        position_ids=batch.position_ids,
        logits_to_keep=width_c + 1,
        use_cache=False,
    )
    logits = out.logits[:, :-1].float()  # (B, T, V): position t predicts completion token t
    logprobs = token_logprobs(logits, batch.completion_ids, temperature)
    entropy = None
    if with_entropy:
        with torch.no_grad():
            entropy = entropy_from_logits(logits, temperature)
    return logprobs, entropy


def lr_lambda(schedule: str, warmup_steps: int, total_steps: int):
    """Multiplier of the peak learning rate at optimizer step ``i`` (0-based)."""

    def fn(i: int) -> float:
        if warmup_steps > 0 and i < warmup_steps:
            return (i + 1) / warmup_steps
        if schedule == "constant":
            return 1.0
        progress = min(1.0, (i - warmup_steps) / max(1, total_steps - warmup_steps))
        if schedule == "linear":
            return max(0.0, 1.0 - progress)
        return 0.5 * (1.0 + math.cos(math.pi * progress))  # cosine

    return fn


def make_optimizer(model: torch.nn.Module, lr: float, weight_decay: float, betas=(0.9, 0.999),
                   schedule: str = "constant", warmup_steps: int = 0, total_steps: int = 1):
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, betas=betas)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(schedule, warmup_steps, total_steps))
    return optimizer, scheduler
