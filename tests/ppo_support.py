"""Tiny reward models and plugin verifiers for the PPO, critic and monitor tests.

Reward models follow the contract of ``rlvr rm`` (grpo/reward_model.py): a folder loadable with
``AutoModelForSequenceClassification.from_pretrained`` (num_labels=1, head ``score``, config.pad_token_id
set), the policy's tokenizer, and ``reward_stats.json``. They are built here rather than trained, so
the tests know exactly what they reward.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from verifiers import Verdict  # the only import at the top: the sandbox imports this module for no_digits


def _tokenizer(policy_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(policy_dir)


def digit_token_ids(tokenizer) -> list[int]:
    """Ids of the tokens that spell one digit (the tiny tokenizer splits digits one per token)."""
    return sorted(i for tok, i in tokenizer.get_vocab().items() if tokenizer.decode([i]).strip().isdigit())


def build_reward_model(out: str | Path, policy_dir: str | Path, *, kind: str = "random", stats: bool = True,
                       vocab_size: int | None = None, hidden_size: int = 64, seed: int = 0) -> Path:
    """A one-output Qwen2 sequence classifier on the policy's tokenizer, saved to ``out``.

    ``kind``:
    * ``random``: random initialisation (a reward model nobody trained);
    * ``digits``: scores 1 when the last token is a digit and 0 otherwise, exactly: every layer adds
      nothing to the residual stream (attention and MLP output projections are zero), so the head
      sees the normalized embedding of the last token, and only digit embeddings have the direction
      the head reads;
    * ``nan``: the head's weights are NaN, so every score is NaN.
    """
    import torch
    from transformers import Qwen2Config, Qwen2ForSequenceClassification

    tokenizer = _tokenizer(policy_dir)
    vocab = vocab_size or len(tokenizer)
    config = Qwen2Config(vocab_size=vocab, hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                         num_hidden_layers=2, num_attention_heads=1, num_key_value_heads=1, head_dim=hidden_size,
                         max_position_embeddings=512, num_labels=1, pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id, bos_token_id=None, tie_word_embeddings=False)
    torch.manual_seed(seed)
    model = Qwen2ForSequenceClassification(config)
    with torch.no_grad():
        if kind == "digits":
            for layer in model.model.layers:
                layer.self_attn.o_proj.weight.zero_()
                layer.mlp.down_proj.weight.zero_()
            embed = model.model.embed_tokens.weight
            embed.zero_()
            embed[:, 1] = 1.0  # every token
            embed[digit_token_ids(tokenizer), 0] = 1.0  # digits also point along dimension 0
            model.model.norm.weight.fill_(1.0)
            model.score.weight.zero_()
            # RMSNorm of (1, 1, 0, ...) is sqrt(H / 2) * (1, 1, 0, ...): a head of 1 / sqrt(H / 2) on dimension 0
            model.score.weight[0, 0] = 1.0 / math.sqrt(hidden_size / 2)
        elif kind == "nan":
            model.score.weight.fill_(float("nan"))
        elif kind != "random":
            raise ValueError(f"unknown reward model kind {kind!r}")
    out = Path(out)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    if stats:
        mean, std = (0.1, 0.3) if kind == "digits" else (0.0, 1.0)
        (out / "reward_stats.json").write_text(json.dumps({"mean": mean, "std": std, "n": 100}) + "\n")
    return out


def no_digits(completion: str, example) -> Verdict:
    """Correct iff the completion holds no digit: what a reward model that pays for digits works against."""
    digits = sum(ch.isdigit() for ch in completion)
    return Verdict("correct" if digits == 0 else "incorrect", float(digits == 0), f"{digits} digits")
