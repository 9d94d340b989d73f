"""Prompt + completion pairs packed into one batch, and the policy's per-token log-probs of the completions."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Sequence

import torch

from grpo import distributed
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
# runs the whole sequence (checked by tests/test_prompt_sharing.py and tests/test_trim_padding.py for llama and qwen2)
SHARED_PROMPT_MODEL_TYPES = frozenset({"llama", "qwen2", "qwen3"})


def completion_logprobs(model: torch.nn.Module, batch: PackedBatch, temperature: float = 1.0,
                        with_entropy: bool = False, share_prompts: bool = True,
                        trim_padding: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-token log-probs (B, T) of the completion tokens, and optionally their entropy (B, T).

    Only the logits that predict completion tokens are computed (``logits_to_keep``),
    so the LM head never runs over the prompt. With ``share_prompts``, where rows repeat a
    prompt (GRPO's G samples of one prompt, DPO's chosen and rejected), each distinct prompt
    is run once, but its last token, and its rows continue from its KV cache: the same values and
    gradients (the cache is indexed out to the rows by a differentiable gather, so the prompt's
    activations get every row's gradient) with the prompt's share of the compute divided by the repeats.
    With ``trim_padding``, rows are grouped by completion length (``length_buckets``) and each
    group runs only as wide as its longest completion, so short samples do not pay for the
    longest one's padding (entries cut off that way are 0). Read both outputs under ``completion_mask``.
    """
    width_c = batch.completion_ids.shape[1]
    shared = _shared_prompt_rows(model, batch) if share_prompts else None
    lengths = batch.completion_mask.sum(-1).tolist()
    base = 1 if shared is not None else batch.input_ids.shape[1] - width_c  # per-row positions besides the completion
    buckets = (length_buckets(lengths, base) if trim_padding and _one_process()
               else [(list(range(len(lengths))), width_c)])
    whole = len(buckets) == 1 and buckets[0][1] == width_c  # the batch as packed: no indexing, no reordering
    prefix = _prompt_prefix(model, batch, shared[0]) if shared is not None else None
    parts: list[tuple[torch.Tensor, torch.Tensor | None]] = []
    for rows, width in buckets:
        index = None if whole else torch.tensor(rows, device=batch.input_ids.device)
        if prefix is not None:
            logits = _continue_from_prefix(model, batch, prefix, shared[1], index, width)
        else:
            logits = _plain_forward(model, batch, index, width)
        logits = logits[:, :-1].float()  # (b, width, V): position t predicts completion token t
        tokens = batch.completion_ids if index is None else batch.completion_ids[index]
        logprobs = token_logprobs(logits, tokens[:, :width], temperature)
        entropy = None
        if with_entropy:
            with torch.no_grad():
                entropy = entropy_from_logits(logits, temperature)
        parts.append((logprobs, entropy))
    if whole:
        return parts[0]
    order = torch.tensor([r for rows, _ in buckets for r in rows], device=batch.input_ids.device)
    restore = torch.argsort(order)

    def gather(tensors: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat([torch.nn.functional.pad(t, (0, width_c - t.shape[1])) for t in tensors])[restore]

    logprobs = gather([lp for lp, _ in parts])
    entropy = gather([ent for _, ent in parts]) if with_entropy else None
    return logprobs, entropy


# what one more forward call costs, in row-positions of compute (the per-layer dispatch and the smaller
# matrix products of a split batch); length_buckets splits a batch only where it saves more padding than this
BUCKET_OVERHEAD_POSITIONS = 64


def length_buckets(lengths: Sequence[int], base: int,
                   overhead: int = BUCKET_OVERHEAD_POSITIONS) -> list[tuple[list[int], int]]:
    """Rows grouped by completion length: ``[(rows, width), ...]``, each group to run ``width`` positions wide.

    Rows are sorted by length and cut into contiguous groups that minimise the positions computed,
    ``sum(len(rows) * (base + width)) + overhead * len(groups)``, where ``base`` is what every row costs
    besides its completion (its prompt, or 1 when prompts are shared) and ``width`` a group's longest
    completion (at least 1). An exact dynamic programme over the cut points; one group when that is cheapest.
    """
    order = sorted(range(len(lengths)), key=lambda r: lengths[r])
    widths = [max(1, lengths[r]) for r in order]
    n = len(order)
    best = [0.0] + [float("inf")] * n  # best[j]: the cheapest cut of the j shortest rows
    cut = [0] * (n + 1)
    for j in range(1, n + 1):
        for i in range(j):  # the last group is rows i..j-1, as wide as row j-1
            cost = best[i] + (j - i) * (base + widths[j - 1]) + overhead
            if cost < best[j]:
                best[j], cut[j] = cost, i
    groups = []
    j = n
    while j > 0:
        i = cut[j]
        groups.append((order[i:j], widths[j - 1]))
        j = i
    groups.reverse()
    if len(groups) == 1:
        return [(list(range(n)), widths[-1])]  # the batch as it is: no reordering
    return groups


def _plain_forward(model, batch: PackedBatch, index: torch.Tensor | None, width: int) -> torch.Tensor:
    """Logits (b, width + 1, V) of the rows ``index`` (all when None), the completion cut to ``width``."""
    end = batch.input_ids.shape[1] - batch.completion_ids.shape[1] + width

    def rows(t: torch.Tensor) -> torch.Tensor:
        return (t if index is None else t[index])[:, :end]

    out = model(input_ids=rows(batch.input_ids), attention_mask=rows(batch.attention_mask),
                position_ids=rows(batch.position_ids), logits_to_keep=width + 1, use_cache=False)
    return out.logits


def _prompt_prefix(model, batch: PackedBatch, first: torch.Tensor):
    """Pass 1: the KV cache (U rows) of each distinct prompt but its last token; ``first`` (U,) is a row
    holding each distinct prompt."""
    width_p = batch.input_ids.shape[1] - batch.completion_ids.shape[1]
    prefix = model(
        input_ids=batch.input_ids[first, : width_p - 1],
        attention_mask=batch.attention_mask[first, : width_p - 1],
        position_ids=batch.position_ids[first, : width_p - 1],
        logits_to_keep=1,
        use_cache=True,
    )
    return prefix.past_key_values


def _continue_from_prefix(model, batch: PackedBatch, prefix, inverse: torch.Tensor, index: torch.Tensor | None,
                          width: int) -> torch.Tensor:
    """Pass 2 for the rows ``index`` (all when None): logits (b, width + 1, V) at each row's last prompt
    token and its completion cut to ``width``, run on a copy of the prefix cache indexed out to those rows
    by ``inverse`` (B,), the distinct prompt of each row (the prefix stays whole for the other groups)."""
    width_p = batch.input_ids.shape[1] - batch.completion_ids.shape[1]
    cache = copy.copy(prefix)
    cache.layers = [copy.copy(layer) for layer in prefix.layers]
    cache.batch_select_indices(inverse if index is None else inverse[index])  # (U, ...) -> (b, ...)

    def rows(t: torch.Tensor) -> torch.Tensor:
        return t if index is None else t[index]

    out = model(
        input_ids=rows(batch.input_ids)[:, width_p - 1 : width_p + width],
        attention_mask=rows(batch.attention_mask)[:, : width_p + width],  # past (prompt but its last token) + this pass
        position_ids=rows(batch.position_ids)[:, width_p - 1 : width_p + width],
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
    if not _one_process():
        return False
    if inner.training and any(getattr(m, "gradient_checkpointing", False) is True for m in inner.modules()):
        return False
    return True


def _one_process() -> bool:
    """A run of one process: several ranks wrap the policy in DDP or FSDP, which expect one forward per
    backward, the same on every rank. A process group of one (vLLM's in-process engine starts one) is
    still one process."""
    return not distributed.current().is_distributed
