"""Micro-batches of a training batch: at most ``micro_batch_size`` rows, and at most an activation-memory
budget (``micro_batch_memory_gb``), so one default fits both a 2M-parameter toy and a 135M model."""

from __future__ import annotations

from typing import Sequence

import torch


def activation_bytes_per_position(model: torch.nn.Module, gradient_checkpointing: bool = False) -> float | None:
    """An estimate of the memory one position of a forward pass keeps for the backward pass (bytes).

    Per decoder layer: about 8 hidden-size tensors (norms, q/k/v, attention output, residuals) and 4
    intermediate-size ones (gate, up, their activation and product) in the model's dtype; with gradient
    checkpointing, only each layer's input, plus one layer recomputed at a time. The LM head adds the
    float32 logits, their gradient and the entropy's softmax (3 x vocabulary x 4 bytes). None for a model
    whose config does not give these sizes (the budget is then not applied).
    """
    config = getattr(model, "config", None)
    sizes = [getattr(config, k, None) for k in ("num_hidden_layers", "hidden_size", "intermediate_size", "vocab_size")]
    if not all(isinstance(v, int) and v > 0 for v in sizes):
        return None
    layers, hidden, intermediate, vocab = sizes
    param = next(model.parameters(), None)
    elem = param.element_size() if param is not None else 4
    layer = (8 * hidden + 4 * intermediate) * elem
    body = layers * hidden * elem + layer if gradient_checkpointing else layers * layer
    return float(body + 3 * vocab * 4)


def plan_micro_batches(prompts: Sequence[Sequence[int]], completions: Sequence[Sequence[int]], max_rows: int,
                       max_positions: float | None) -> list[list[int]]:
    """Consecutive rows cut into micro-batches of at most ``max_rows`` rows and, when ``max_positions`` is
    given, at most that many positions: each row counts its completion, and its prompt the first time
    that prompt appears in the micro-batch (prompts are shared). A row that alone exceeds the budget
    still gets a micro-batch of its own."""
    out: list[list[int]] = []
    rows: list[int] = []
    seen: set[tuple[int, ...]] = set()
    used = 0.0
    for i, (p, c) in enumerate(zip(prompts, completions)):
        key = tuple(p)
        cost = len(c) + (0 if key in seen else len(p))
        full = len(rows) >= max_rows or (max_positions is not None and rows and used + cost > max_positions)
        if full:
            out.append(rows)
            rows, seen, used = [], set(), 0.0
            cost = len(c) + len(p)
        rows.append(i)
        seen.add(key)
        used += cost
    if rows:
        out.append(rows)
    return out
