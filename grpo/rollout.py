"""The rollout-engine contract: prompts in, G completions per prompt out.

Engines (HF ``generate`` here, vLLM alongside) implement ``RolloutEngine``:

* ``generate(prompt_ids, n, sampling) -> Completions``: ``n`` samples for each
  prompt, grouped by prompt (all samples of prompt 0 first), each with its token
  ids, text, the sampler's log-probability of every sampled token under the
  distribution it was actually drawn from, and why it stopped.
* ``load_weights(named_tensors)``: take new policy weights after an optimizer step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Literal, Protocol, Sequence

import torch

FinishReason = Literal["stop", "length"]


@dataclass(frozen=True)
class SamplingParams:
    """How to sample. ``temperature == 0`` means greedy decoding."""

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0  # 0 disables top-k
    max_new_tokens: int = 64
    stop: tuple[str, ...] = ()  # stop strings; the completion ends with the matched string

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0; got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1]; got {self.top_p}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0 (0 disables it); got {self.top_k}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1; got {self.max_new_tokens}")


@dataclass
class Completions:
    """``N = len(prompts) * n`` completions, grouped by prompt."""

    prompt_index: list[int] = field(default_factory=list)  # (N,) which prompt each completion answers
    token_ids: list[list[int]] = field(default_factory=list)  # (N, T_i) sampled tokens, EOS included
    text: list[str] = field(default_factory=list)  # (N,) decoded, special tokens removed
    logprobs: list[list[float]] = field(default_factory=list)  # (N, T_i) sampler log-probs of token_ids
    finish_reason: list[FinishReason] = field(default_factory=list)  # (N,) stop (EOS/stop string) or length

    def __len__(self) -> int:
        return len(self.token_ids)

    def extend(self, other: "Completions", index_offset: int = 0) -> None:
        self.prompt_index += [i + index_offset for i in other.prompt_index]
        self.token_ids += other.token_ids
        self.text += other.text
        self.logprobs += other.logprobs
        self.finish_reason += other.finish_reason


class RolloutEngine(Protocol):
    def generate(self, prompt_ids: Sequence[Sequence[int]], n: int, sampling: SamplingParams) -> Completions: ...

    def load_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None: ...
