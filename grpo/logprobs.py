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
