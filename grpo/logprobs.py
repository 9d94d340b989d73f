"""Prompt + completion pairs packed into one batch, and the policy's per-token log-probs of the completions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from grpo.losses import entropy_from_logits, token_logprobs


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


# decoder architectures whose HF forward runs a multi-token continuation on a DynamicCache exactly as it
# runs the whole sequence (checked by tests/test_prompt_sharing.py for llama and qwen2)
SHARED_PROMPT_MODEL_TYPES = frozenset({"llama", "qwen2", "qwen3"})


def completion_logprobs(model: torch.nn.Module, batch: PackedBatch, temperature: float = 1.0,
                        with_entropy: bool = False,
                        share_prompts: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-token log-probs (B, T) of the completion tokens, and optionally their entropy (B, T).

    Only the logits that predict completion tokens are computed (``logits_to_keep``),
    so the LM head never runs over the prompt. With ``share_prompts``, where rows repeat a
    prompt (GRPO's G samples of one prompt, DPO's chosen and rejected), each distinct prompt
    is run once and its rows continue from its KV cache (``shared_prompt_forward``): the same
    values and gradients with the prompt's share of the compute divided by the repeats.
    """
    width_c = batch.completion_ids.shape[1]
    rows = _shared_prompt_rows(model, batch) if share_prompts else None
    if rows is not None:
        logits = shared_prompt_forward(model, batch, *rows)
    else:
        out = model(
            input_ids=batch.input_ids,
            attention_mask=batch.attention_mask,
            position_ids=batch.position_ids,
            logits_to_keep=width_c + 1,
            use_cache=False,
        )
        logits = out.logits
    logits = logits[:, :-1].float()  # (B, T, V): position t predicts completion token t
    logprobs = token_logprobs(logits, batch.completion_ids, temperature)
    entropy = None
    if with_entropy:
        with torch.no_grad():
            entropy = entropy_from_logits(logits, temperature)
    return logprobs, entropy


def shared_prompt_forward(model, batch: PackedBatch, first: torch.Tensor, inverse: torch.Tensor) -> torch.Tensor:
    """Logits (B, T + 1, V) at the last prompt position and every completion position, with each distinct
    prompt run once.

    ``first`` (U,) is a row holding each distinct prompt, ``inverse`` (B,) the distinct prompt of each
    row. Pass 1 runs the U prompts but their last token and keeps the KV cache; the cache is indexed
    out to the B rows (a differentiable gather, so the prompt's activations get every row's gradient);
    pass 2 runs each row's last prompt token and its completion on it, under the whole row's mask.
    """
    width_p = batch.input_ids.shape[1] - batch.completion_ids.shape[1]
    prefix = model(
        input_ids=batch.input_ids[first, : width_p - 1],
        attention_mask=batch.attention_mask[first, : width_p - 1],
        position_ids=batch.position_ids[first, : width_p - 1],
        logits_to_keep=1,
        use_cache=True,
    )
    cache = prefix.past_key_values
    cache.batch_select_indices(inverse)  # (U, ...) -> (B, ...)
    out = model(
        input_ids=batch.input_ids[:, width_p - 1 :],
        attention_mask=batch.attention_mask,  # past (prompt but its last token) + this pass
        position_ids=batch.position_ids[:, width_p - 1 :],
        past_key_values=cache,
        use_cache=True,
    )
    return out.logits


def _shared_prompt_rows(model, batch: PackedBatch) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(first, inverse) when sharing prompts pays and is exact for this model; else None (one pass)."""
    width_p = batch.input_ids.shape[1] - batch.completion_ids.shape[1]
    if width_p < 2 or batch.input_ids.shape[0] < 2 or not _can_share_prompts(model):
        return None
    ids, mask = batch.input_ids[:, :width_p].tolist(), batch.attention_mask[:, :width_p].tolist()
    keys = [tuple(t for t, m in zip(row, row_mask) if m) for row, row_mask in zip(ids, mask)]  # the real tokens
    index: dict[tuple, int] = {}
    inverse = [index.setdefault(k, len(index)) for k in keys]
    if len(index) == len(keys):
        return None  # every prompt distinct: nothing to share
    first = [0] * len(index)
    for row in reversed(range(len(keys))):
        first[inverse[row]] = row
    device = batch.input_ids.device
    return torch.tensor(first, device=device), torch.tensor(inverse, device=device)


def _can_share_prompts(model) -> bool:
    """A plain (or peft) Hugging Face decoder of a known architecture, in this process, with no gradient
    checkpointing (which drops the KV cache in training) and no distributed wrapper."""
    inner = getattr(model, "model", None) if type(model).__name__ == "AdaptersDisabled" else model
    if not isinstance(inner, torch.nn.Module):
        return False
    config = getattr(inner, "config", None)
    if getattr(config, "model_type", None) not in SHARED_PROMPT_MODEL_TYPES:
        return False
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return False  # DDP / FSDP: one forward per backward, as their hooks expect
    if inner.training and any(getattr(m, "gradient_checkpointing", False) is True for m in inner.modules()):
        return False
    return True
