"""Preference pairs as token ids: what reward-model training and DPO read.

A pair file (``grpo/pairs.py``) holds text or chat messages. Here each pair
becomes ``(prompt_ids, chosen_ids, rejected_ids)``, split into training and
held-out pairs, and served in shuffled batches.

Token ids: pairs written by ``rlvr pairs`` keep the ids the policy actually
sampled in ``meta`` (``prompt_ids``, ``chosen_ids``, ``rejected_ids``), because
decoding and re-encoding does not always give the same ids back (a completion
cut at ``max_new_tokens`` has no EOS; a BPE may merge differently). They are
used when they match this tokenizer: the prompt ids equal the rendered prompt's
and each completion's ids decode to its text. Otherwise the pair is rendered
from its text (``grpo.pairs.render_pair``: completion + EOS).
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from grpo.config import ConfigError, PairDataConfig
from grpo.pairs import PairFileError, PreferencePair, read_pairs, render_pair

SAMPLED_ID_KEYS = ("prompt_ids", "chosen_ids", "rejected_ids")


@dataclass(frozen=True)
class TokenPair:
    """One pair as token ids; ``prompt + chosen`` and ``prompt + rejected`` are the two sequences."""

    prompt_ids: list[int]  # (P,)
    chosen_ids: list[int]  # (Tc,) ends with EOS unless the sampled completion was cut at max_new_tokens
    rejected_ids: list[int]  # (Tr,)
    margin: float | None = None  # the pair's Bradley-Terry margin, if the file gives one
    prompt_key: str = ""  # identifies the prompt: pairs of one prompt stay on one side of the held-out split

    @property
    def length(self) -> int:
        """Tokens of the longer of the two sequences."""
        return len(self.prompt_ids) + max(len(self.chosen_ids), len(self.rejected_ids))


@dataclass
class PairData:
    """Training and held-out pairs, and how they were read."""

    train: list[TokenPair]
    heldout: list[TokenPair]
    summary: dict[str, Any] = field(default_factory=dict)


def _completion_text(turn: Any) -> str | None:
    if isinstance(turn, str):
        return turn
    if len(turn) == 1 and turn[0].get("role") == "assistant":
        return turn[0]["content"]
    return None


def _sampled_ids(pair: PreferencePair, tokenizer, rendered_prompt: list[int]) -> tuple[list[int], ...] | None:
    """The sampled ids of ``meta`` when they are this tokenizer's ids of the pair's text, else None."""
    try:
        ids = [[int(t) for t in pair.meta[key]] for key in SAMPLED_ID_KEYS]
    except (KeyError, TypeError, ValueError):
        return None
    prompt, chosen, rejected = ids
    if prompt != rendered_prompt or not chosen or not rejected:
        return None
    vocab = len(tokenizer)
    if any(not 0 <= t < vocab for seq in ids for t in seq):
        return None
    for seq, turn in ((chosen, pair.chosen), (rejected, pair.rejected)):
        if tokenizer.decode(seq, skip_special_tokens=True) != _completion_text(turn):
            return None
    return prompt, chosen, rejected


def prompt_key(pair: PreferencePair) -> str:
    """A stable digest of the pair's prompt."""
    text = pair.prompt if isinstance(pair.prompt, str) else json.dumps([dict(m) for m in pair.prompt], sort_keys=True)
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def tokenize_pairs(pairs: Sequence[PreferencePair], tokenizer, *, use_chat_template: bool, max_length: int,
                   use_sampled_ids: bool = True, source: str = "pairs") -> tuple[list[TokenPair], dict[str, int]]:
    """Token ids of each pair that fits ``max_length``; counts of what was dropped and how pairs were encoded.

    Raises:
        ConfigError: a pair cannot be rendered (chat pairs without ``use_chat_template``, a
            multi-message completion, ...), naming the file and the pair's number; or none fits.
    """
    out, too_long, sampled = [], 0, 0
    for number, pair in enumerate(pairs, 1):
        try:
            prompt, chosen, rejected = render_pair(pair, tokenizer, use_chat_template)
        except ValueError as exc:
            raise ConfigError(f"{source}: pair {number}: {exc}") from exc
        if use_sampled_ids and (ids := _sampled_ids(pair, tokenizer, prompt)) is not None:
            prompt, chosen, rejected = ids
            sampled += 1
        token_pair = TokenPair(prompt, chosen, rejected, pair.margin, prompt_key(pair))
        if token_pair.length > max_length:
            too_long += 1
            continue
        out.append(token_pair)
    if not out:
        raise ConfigError(f"{source}: none of the {len(pairs)} pairs fits data.max_length={max_length} tokens "
                          "(prompt + the longer completion); raise data.max_length")
    return out, {"pairs": len(pairs), "dropped_too_long": too_long, "used_sampled_ids": sampled}


def split_by_prompt(pairs: Sequence[TokenPair], fraction: float, seed: int) -> tuple[list[TokenPair], list[TokenPair]]:
    """(train, held-out): a seeded ``fraction`` of the distinct prompts, with all their pairs, is held out.

    Splitting by prompt rather than by pair keeps two pairs of one prompt from landing on both
    sides, which would let held-out accuracy reward memorising prompts.
    """
    keys = sorted({p.prompt_key for p in pairs})
    random.Random(seed).shuffle(keys)
    n_heldout = int(round(fraction * len(keys)))
    if fraction > 0 and len(keys) >= 2:
        n_heldout = min(max(1, n_heldout), len(keys) - 1)
    held = set(keys[:n_heldout])
    return [p for p in pairs if p.prompt_key not in held], [p for p in pairs if p.prompt_key in held]


def _read(path: str, what: str) -> list[PreferencePair]:
    try:
        return read_pairs(path)
    except PairFileError as exc:
        raise ConfigError(f"{what}: {exc}") from exc


def load_pair_data(cfg: PairDataConfig, tokenizer, seed: int) -> PairData:
    """Read, tokenize and split the pairs ``cfg`` names.

    Raises:
        ConfigError: a file is missing or malformed (the message names the file, the line and the fix),
            a pair cannot be rendered, or nothing fits ``max_length``.
    """
    kwargs = dict(use_chat_template=cfg.use_chat_template, max_length=cfg.max_length,
                  use_sampled_ids=cfg.use_sampled_ids)
    train, train_counts = tokenize_pairs(_read(cfg.train, "data.train"), tokenizer, source=cfg.train, **kwargs)
    summary: dict[str, Any] = {"train_file": cfg.train, "train_file_counts": train_counts}
    if cfg.heldout is not None:
        heldout, heldout_counts = tokenize_pairs(_read(cfg.heldout, "data.heldout"), tokenizer, source=cfg.heldout,
                                                 **kwargs)
        summary.update(heldout_file=cfg.heldout, heldout_file_counts=heldout_counts)
        shared = {p.prompt_key for p in heldout} & {p.prompt_key for p in train}
        summary["heldout_prompts_also_in_train"] = len(shared)
    else:
        train, heldout = split_by_prompt(train, cfg.heldout_fraction, seed)
        summary["heldout_fraction"] = cfg.heldout_fraction
    if not train:
        raise ConfigError(f"data.heldout_fraction={cfg.heldout_fraction} leaves no training pairs in {cfg.train}; "
                          "lower it or give the held-out pairs as a file (data.heldout)")
    summary.update(train_pairs=len(train), heldout_pairs=len(heldout))
    return PairData(train, heldout, summary)


class BatchOrder:
    """Indices of ``size`` items in shuffled epochs, ``batch_size`` at a time (seeded)."""

    def __init__(self, size: int, seed: int):
        self.size = size
        self.rng = random.Random(seed)
        self.order: list[int] = []

    def next(self, batch_size: int) -> list[int]:
        batch = []
        while len(batch) < batch_size:
            if not self.order:
                self.order = list(range(self.size))
                self.rng.shuffle(self.order)
            batch.append(self.order.pop())
        return batch


def chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    """``items`` in consecutive slices of at most ``size``."""
    return [items[i : i + size] for i in range(0, len(items), size)]


def refuse_existing_run(run_dir: str | Path) -> None:
    """ConfigError if ``run_dir`` already holds a run (its files would be overwritten)."""
    run = Path(run_dir)
    held = [name for name in ("config.yaml", "metrics.jsonl", "checkpoints") if (run / name).exists()]
    if held:
        raise ConfigError(f"output_dir {str(run)!r} already holds a run ({', '.join(held)}); choose another "
                          "--output-dir, or delete that folder to start over")
