"""Reward models: loading, scoring token sequences, and the reward statistics PPO normalizes with.

A reward model here is a standard Hugging Face sequence classifier with one
output (``AutoModelForSequenceClassification``, ``num_labels=1``): a decoder
whose linear head ``score`` maps each position's hidden state to a scalar, read
at the last token that is not ``pad_token_id``. Any tool that loads the folder
with ``AutoModelForSequenceClassification.from_pretrained`` gets the same
scores. ``rlvr rm`` initialises one from a causal LM folder (e.g. the SFT
policy; the ``score`` head is new) and trains it on preference pairs.

The model folder also holds ``reward_stats.json``: ``{"mean", "std", "n"}`` of
the model's rewards over its training pairs' completions (chosen and rejected).
PPO normalizes rewards with them, ``(r - mean) / std``, and refuses to start
without them.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import torch

from grpo.attention import use_cpu_gqa_attention
from grpo.config import ConfigError, ModelConfig

REWARD_STATS_FILE = "reward_stats.json"


@dataclass(frozen=True)
class RewardStats:
    """Mean and standard deviation of a reward model's rewards over ``n`` training completions."""

    mean: float
    std: float
    n: int

    def __post_init__(self) -> None:
        if not (isinstance(self.mean, (int, float)) and math.isfinite(self.mean)):
            raise ValueError(f"mean must be a finite number, got {self.mean!r}")
        if not (isinstance(self.std, (int, float)) and math.isfinite(self.std) and self.std > 0):
            raise ValueError(f"std must be a finite number > 0, got {self.std!r}")
        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 2:
            raise ValueError(f"n must be an integer >= 2 (completions the statistics were taken over), got {self.n!r}")

    def normalize(self, rewards: torch.Tensor) -> torch.Tensor:
        """``(rewards - mean) / std``, any shape."""
        return (rewards - self.mean) / self.std

    @classmethod
    def of(cls, rewards: torch.Tensor) -> "RewardStats":
        """Statistics of (N,) rewards (population std)."""
        r = rewards.detach().double().flatten()
        return cls(mean=float(r.mean()), std=float(r.std(unbiased=False)), n=int(r.numel()))


def _stats_file(path: str | Path) -> Path:
    """``path`` itself when it names a file, else ``reward_stats.json`` in the model folder it resolves to."""
    p = Path(path)
    if p.suffix == ".json":
        return p
    from grpo.models import resolve_model_path

    return Path(resolve_model_path(str(p))) / REWARD_STATS_FILE


def load_reward_stats(path: str | Path) -> RewardStats:
    """The reward statistics of a reward model (a model folder, a run folder, or the JSON file itself).

    Raises:
        ConfigError: the file is missing or malformed; the message names the file and the fix.
    """
    file = _stats_file(path)
    fix = (f"train the reward model with `rlvr rm` (which writes {REWARD_STATS_FILE} beside the weights), or write "
           '{"mean": M, "std": S, "n": N} there: the mean and standard deviation of the model\'s rewards over N '
           "completions of its training pairs")
    if not file.is_file():
        raise ConfigError(f"{file}: no reward statistics; PPO normalizes the reward model's scores with them. Fix: {fix}")
    try:
        data = json.loads(file.read_text())
        if not isinstance(data, dict):
            raise ValueError("the file must hold one JSON object")
        return RewardStats(mean=data.get("mean"), std=data.get("std"), n=data.get("n"))
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{file}: malformed reward statistics ({exc}). Fix: {fix}") from exc


def write_reward_stats(folder: str | Path, stats: RewardStats) -> Path:
    path = Path(folder) / REWARD_STATS_FILE
    path.write_text(json.dumps(asdict(stats), indent=1) + "\n")
    return path


class TokenizerWithRewardStats:
    """A tokenizer whose ``save_pretrained`` also writes ``reward_stats.json``.

    ``grpo.checkpoint.save_checkpoint`` saves the model and the tokenizer into a temporary
    folder and renames it into place only once everything is written; handing it this
    wrapper puts the statistics inside that same atomic step, so no complete checkpoint
    ever lacks them.
    """

    def __init__(self, tokenizer, stats: RewardStats):
        self.tokenizer, self.stats = tokenizer, stats

    def save_pretrained(self, folder: str | Path, **kwargs) -> None:
        self.tokenizer.save_pretrained(folder, **kwargs)
        write_reward_stats(folder, self.stats)


def _check_reward_config(config, where: str) -> None:
    archs = list(getattr(config, "architectures", None) or [])
    if not any(a.endswith("ForSequenceClassification") for a in archs):
        raise ConfigError(f"{where} is not a reward model: its architectures are {archs or 'not recorded'}, not a "
                          "...ForSequenceClassification. Train one with `rlvr rm` (model.path = a causal LM such as "
                          "the SFT policy)")
    if config.num_labels != 1:
        raise ConfigError(f"{where} has num_labels={config.num_labels}; a reward model has one output (num_labels=1)")
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    if text.pad_token_id is None:
        raise ConfigError(f"{where}: config.json has no pad_token_id, so the score of a padded batch cannot be read "
                          "at each sequence's last token; set pad_token_id in its config.json to the tokenizer's "
                          "pad token id")


def load_reward_model(path: str, dtype: str = "float32", trust_remote_code: bool = False):
    """``(model, tokenizer)`` of a trained reward model, in eval mode.

    ``path``: a reward-model folder, or a run folder of ``rlvr rm`` (its newest checkpoint).
    Score token sequences with :func:`sequence_rewards`; normalize with :func:`load_reward_stats`.

    Raises:
        ConfigError: the folder cannot be loaded, or holds no one-output sequence classifier
            with ``pad_token_id`` set.
    """
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from grpo.models import DTYPES, load_tokenizer, quiet_transformers, resolve_model_path

    quiet_transformers()
    resolved = resolve_model_path(path)
    try:
        config = AutoConfig.from_pretrained(resolved, trust_remote_code=trust_remote_code)
    except OSError as exc:
        raise ConfigError(f"cannot load the reward model {path!r} ({exc}); give a folder written by `rlvr rm`") from exc
    _check_reward_config(config, f"reward model {path!r}")
    model = AutoModelForSequenceClassification.from_pretrained(resolved, dtype=DTYPES[dtype],
                                                               trust_remote_code=trust_remote_code)
    use_cpu_gqa_attention(model)  # the same scores, without copying a GQA model's KV heads on the CPU
    tokenizer = load_tokenizer(ModelConfig(path=resolved, dtype=dtype, trust_remote_code=trust_remote_code))
    return model.eval(), tokenizer


def init_reward_model(cfg: ModelConfig):
    """``(model, tokenizer)`` to train: a one-output sequence classifier from ``cfg.path``.

    From a causal LM folder the decoder weights load and a fresh ``score`` head is created
    (its LM head is dropped); from a reward-model folder everything loads. ``pad_token_id``
    is set in the model's config, which is how the model finds each sequence's last token.
    """
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from grpo.models import DTYPES, load_tokenizer, quiet_transformers, resolve_model_path

    quiet_transformers()
    tokenizer = load_tokenizer(cfg)  # sets a pad token (EOS) when the tokenizer has none
    resolved = resolve_model_path(cfg.path)
    try:
        config = AutoConfig.from_pretrained(resolved, trust_remote_code=cfg.trust_remote_code)
    except OSError as exc:
        raise ConfigError(f"cannot load model.path {cfg.path!r} ({exc})") from exc
    archs = list(getattr(config, "architectures", None) or [])
    if any(a.endswith("ForSequenceClassification") for a in archs) and config.num_labels != 1:
        raise ConfigError(f"model.path {cfg.path!r} is a classifier with {config.num_labels} outputs; a reward model "
                          "has one: start from a causal LM or a reward model")
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            resolved, num_labels=1, dtype=DTYPES[cfg.dtype], trust_remote_code=cfg.trust_remote_code)
    except ValueError as exc:  # an architecture without a sequence-classification variant
        raise ConfigError(f"model.path {cfg.path!r}: no sequence-classification model for it ({exc})") from exc
    use_cpu_gqa_attention(model)
    model.config.pad_token_id = tokenizer.pad_token_id
    if hasattr(model.config, "get_text_config"):
        model.config.get_text_config().pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def right_pad(sequences: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(input_ids, attention_mask)``, both (B, L): sequences right-padded with ``pad_id``."""
    if not sequences or any(len(s) == 0 for s in sequences):
        raise ValueError("every sequence needs at least one token")
    width = max(len(s) for s in sequences)
    input_ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        input_ids[row, : len(seq)] = torch.as_tensor(list(seq), dtype=torch.long)
        attention_mask[row, : len(seq)] = 1
    return input_ids, attention_mask


def sequence_rewards(model: torch.nn.Module, sequences: Sequence[Sequence[int]], pad_id: int) -> torch.Tensor:
    """(B,) rewards of token sequences (prompt ids + completion ids), with grad if enabled.

    Right padding: positions start at 0 in every row without position ids, and the model
    reads its score at the last token that is not ``pad_id`` (``config.pad_token_id``),
    as it does for anyone who calls it. ``pad_id`` must be the model's ``pad_token_id``.
    """
    configured = model.config.get_text_config().pad_token_id if hasattr(model.config, "get_text_config") \
        else model.config.pad_token_id
    if configured != pad_id:
        raise ValueError(f"pad_id {pad_id} differs from the model's config.pad_token_id {configured}; "
                         "the score would be read at the wrong token")
    device = next(model.parameters()).device
    input_ids, attention_mask = right_pad(sequences, pad_id)
    out = model(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device), use_cache=False)
    return out.logits[:, 0].float()  # (B,)


@torch.no_grad()
def score_sequences(model: torch.nn.Module, sequences: Sequence[Sequence[int]], pad_id: int,
                    batch_size: int = 32) -> torch.Tensor:
    """(N,) rewards, in batches of ``batch_size``, without grad; the model's train/eval mode is kept."""
    was_training = model.training
    model.eval()
    try:
        parts = [sequence_rewards(model, sequences[i : i + batch_size], pad_id).cpu()
                 for i in range(0, len(sequences), batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(parts) if parts else torch.zeros(0)
