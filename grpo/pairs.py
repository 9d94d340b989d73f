"""Preference pairs: the data of reward-model training and DPO.

A pair is a prompt with a preferred (``chosen``) and a dispreferred
(``rejected``) completion. Files use the prompt / chosen / rejected layout of
TRL and Hugging Face preference datasets, one pair per JSON Lines line or
Parquet row, in any of three forms:

* plain text: ``{"prompt": "2+2=", "chosen": " 4", "rejected": " 5"}``;
* conversational: ``chosen`` and ``rejected`` are message lists (usually one
  assistant message) and ``prompt`` is a message list:
  ``{"prompt": [{"role": "user", "content": "2+2="}],
  "chosen": [{"role": "assistant", "content": "4"}], "rejected": [...]}``;
* implicit prompt: no ``prompt`` field; ``chosen`` and ``rejected`` are whole
  conversations that share their opening messages; the shared messages are
  the prompt and the rest are the completions.

An optional ``margin`` (a number: how much better ``chosen`` is) and any other
fields are kept (other fields go into ``meta``). :func:`make_pairs` is the
selection rule of ``rlvr pairs``: chosen = a completion the verifier judged
correct, rejected = one it judged incorrect.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import random
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence, Union

from tasks.sources import iter_jsonl

Message = Mapping[str, Any]  # {"role": ..., "content": ...}
Messages = tuple[Message, ...]
Turn = Union[str, Messages]  # plain text, or chat messages

PAIR_FIELDS: tuple[str, ...] = ("prompt", "chosen", "rejected")
STATUSES: tuple[str, ...] = ("correct", "incorrect", "unverifiable")

FORMAT_HELP = (
    'each row needs "chosen" and "rejected" and usually "prompt": all three text, or "chosen"/"rejected" '
    'as message lists ([{"role": "assistant", "content": "..."}]) with "prompt" a message list; without '
    '"prompt", "chosen" and "rejected" must be whole conversations (message lists) sharing their first messages'
)


class PairFileError(ValueError):
    """A preference-pair file that cannot be read; the message names the file, the row and the fix."""


# --------------------------------------------------------------------------- the record


def _check_messages(value: Any, name: str) -> Messages:
    """``value`` as a tuple of message dicts, or ValueError naming what is wrong."""
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
        raise ValueError(f"{name} must be text or a list of messages, got {type(value).__name__}")
    messages = []
    for i, message in enumerate(value):
        if not isinstance(message, Mapping):
            raise ValueError(f"{name}[{i}] must be a message object {{role, content}}, got {type(message).__name__}")
        for key in ("role", "content"):
            if not isinstance(message.get(key), str):
                raise ValueError(
                    f"{name}[{i}] needs a text {key!r}, got {type(message.get(key)).__name__}; "
                    'a message looks like {"role": "user", "content": "..."}'
                )
        messages.append(dict(message))
    if not messages:
        raise ValueError(f"{name} is an empty message list")
    return tuple(messages)


def _check_turn(value: Any, name: str) -> Turn:
    if isinstance(value, str):
        return value
    return _check_messages(value, name)


@dataclass(frozen=True)
class PreferencePair:
    """One prompt with a preferred and a dispreferred completion.

    ``prompt``, ``chosen`` and ``rejected`` are plain text, or chat messages (a
    tuple of ``{"role", "content"}`` mappings; lists are converted). Text
    completions go with a text prompt, message completions with a message
    prompt.
    """

    prompt: Turn
    chosen: Turn
    rejected: Turn
    margin: float | None = None  # how much better chosen is (Bradley-Terry margin); None: unknown
    meta: dict[str, Any] = field(default_factory=dict)  # provenance: task, problem id, statuses, ...

    def __post_init__(self) -> None:
        turns = {name: _check_turn(getattr(self, name), name) for name in PAIR_FIELDS}
        for name, value in turns.items():
            object.__setattr__(self, name, value)
        kinds = {name: isinstance(value, str) for name, value in turns.items()}
        if len(set(kinds.values())) != 1:
            text = [n for n, is_text in kinds.items() if is_text]
            chat = [n for n, is_text in kinds.items() if not is_text]
            raise ValueError(
                f"{', '.join(text)} {'is' if len(text) == 1 else 'are'} text but {', '.join(chat)} "
                f"{'is a message list' if len(chat) == 1 else 'are message lists'}; use text for all three, "
                'or messages for all three (a text prompt becomes [{"role": "user", "content": prompt}])'
            )
        if self.margin is not None:
            if isinstance(self.margin, bool) or not isinstance(self.margin, (int, float)):
                raise ValueError(f"margin must be a number or null, got {type(self.margin).__name__}")
            if not math.isfinite(self.margin):
                raise ValueError(f"margin must be finite, got {self.margin}")
            object.__setattr__(self, "margin", float(self.margin))
        if not isinstance(self.meta, dict):
            raise ValueError(f"meta must be an object (dict), got {type(self.meta).__name__}")

    @property
    def is_chat(self) -> bool:
        """True when the pair holds chat messages rather than text."""
        return not isinstance(self.prompt, str)


# --------------------------------------------------------------------------- reading


def _split_shared_prefix(chosen: Any, rejected: Any) -> tuple[Messages, Messages, Messages]:
    """Implicit prompt: the messages both conversations open with, then each one's remainder."""
    if isinstance(chosen, str) or isinstance(rejected, str):
        raise ValueError(
            'there is no "prompt", and text "chosen"/"rejected" cannot be split into prompt and completion; '
            'add a "prompt" field (and make "chosen"/"rejected" the completions only), '
            "or give them as whole conversations (message lists)"
        )
    chosen = _check_messages(chosen, "chosen")
    rejected = _check_messages(rejected, "rejected")
    shared = 0
    while shared < min(len(chosen), len(rejected)) and chosen[shared] == rejected[shared]:
        shared += 1
    if shared == 0:
        raise ValueError(
            'there is no "prompt", and "chosen" and "rejected" do not open with the same message, so no '
            'prompt can be taken from them; add a "prompt" field'
        )
    if shared == len(chosen) or shared == len(rejected):
        which = "chosen" if shared == len(chosen) else "rejected"
        raise ValueError(
            f'there is no "prompt", and "{which}" has no message after the ones it shares with the other '
            "completion, so it has no completion; each conversation must end with its own answer"
        )
    return chosen[:shared], chosen[shared:], rejected[shared:]


def pair_from_row(row: Mapping[str, Any]) -> PreferencePair:
    """A :class:`PreferencePair` from one file row (see the module doc); ValueError on a bad row."""
    for name in ("chosen", "rejected"):
        if row.get(name) is None:
            raise ValueError(f'missing field "{name}"; {FORMAT_HELP}')
    if row.get("prompt") is None:
        prompt, chosen, rejected = _split_shared_prefix(row["chosen"], row["rejected"])
    else:
        prompt, chosen, rejected = row["prompt"], row["chosen"], row["rejected"]
    meta = row.get("meta")
    if meta is None:
        meta = {}
    elif not isinstance(meta, dict):
        raise ValueError(f'field "meta" must be an object, got {type(meta).__name__}')
    extra = {k: v for k, v in row.items() if k not in (*PAIR_FIELDS, "margin", "meta")}
    return PreferencePair(prompt, chosen, rejected, margin=row.get("margin"), meta={**meta, **extra})


def _file_kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith((".jsonl", ".jsonl.gz")):
        return "jsonl"
    if name.endswith(".parquet"):
        return "parquet"
    raise PairFileError(f"{path}: unknown pair file type; use a .jsonl (optionally .jsonl.gz) or .parquet file")


def _rows(path: Path) -> Iterable[tuple[str, Mapping[str, Any]]]:
    """(where, row) for each row; ``where`` names the file and the line or row number."""
    if _file_kind(path) == "parquet":
        import pyarrow.parquet as pq

        try:
            rows = pq.read_table(path).to_pylist()
        except Exception as exc:  # pyarrow's errors do not name the file
            raise PairFileError(f"{path}: not a readable Parquet file ({exc})") from exc
        for i, row in enumerate(rows, 1):
            yield f"{path} row {i}", row
        return
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:
        for lineno, row in iter_jsonl(fh, path, error=PairFileError):
            yield f"{path}:{lineno}", row


def read_pairs(path: str | Path) -> list[PreferencePair]:
    """All pairs of a JSON Lines (``.jsonl``, ``.jsonl.gz``) or Parquet file.

    Raises:
        PairFileError: the file is missing, of another type, empty, or a row
            is not a valid pair; the message names the file, the line (JSON
            Lines) or row (Parquet, counted from 1) and the fix.
    """
    path = Path(path)
    if not path.is_file():
        raise PairFileError(f"{path}: no such pair file")
    pairs = []
    for where, row in _rows(path):
        try:
            pairs.append(pair_from_row(row))
        except ValueError as exc:
            raise PairFileError(f"{where}: {exc}") from exc
    if not pairs:
        raise PairFileError(f"{path}: holds no pairs; write one JSON object per line ({FORMAT_HELP})")
    return pairs


# --------------------------------------------------------------------------- writing


def pair_to_row(pair: PreferencePair) -> dict[str, Any]:
    """The JSON object :func:`pair_from_row` reads back as ``pair``."""

    def plain(turn: Turn) -> Any:
        return turn if isinstance(turn, str) else [dict(m) for m in turn]

    row: dict[str, Any] = {name: plain(getattr(pair, name)) for name in PAIR_FIELDS}
    if pair.margin is not None:
        row["margin"] = pair.margin
    if pair.meta:
        row["meta"] = pair.meta
    return row


def write_pairs(path: str | Path, pairs: Iterable[PreferencePair]) -> Path:
    """Write ``pairs`` as JSON Lines, atomically: readers see the old file or the whole new one.

    The lines go to a temporary file in the same folder, which then replaces
    ``path`` (``os.replace``); on any error the temporary file is removed and
    ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            for pair in pairs:
                fh.write(json.dumps(pair_to_row(pair)) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


# --------------------------------------------------------------------------- tokenization


def _completion_text(turn: Turn, name: str) -> str:
    if isinstance(turn, str):
        return turn
    if len(turn) != 1 or turn[0]["role"] != "assistant":
        roles = [m["role"] for m in turn]
        raise ValueError(
            f"{name} must be a single assistant message to be rendered as a completion, got roles {roles}; "
            "move earlier turns into the prompt"
        )
    return turn[0]["content"]


def render_pair(
    pair: PreferencePair, tokenizer: Any, use_chat_template: bool
) -> tuple[list[int], list[int], list[int]]:
    """Token ids of a pair, as the policy sees a prompt and produces a completion.

    The prompt is encoded as ``tasks.Task.encode`` encodes task prompts, so the
    pair matches what the policy is asked at rollout time:

    * ``use_chat_template``: the prompt messages (a text prompt becomes one user
      message) rendered by ``tokenizer.apply_chat_template`` with
      ``add_generation_prompt=True``, then encoded without adding special
      tokens (the template holds them);
    * otherwise a text prompt, encoded with the tokenizer's special tokens
      (e.g. a BOS); chat messages then are an error.

    A completion is its text (a chat completion: the content of its single
    assistant message) encoded without special tokens, followed by the EOS
    token, where the policy stops.

    Returns:
        ``(prompt_ids, chosen_ids, rejected_ids)``, lists of token ids.
    """
    eos = getattr(tokenizer, "eos_token_id", None)
    if eos is None:
        raise ValueError("the tokenizer has no eos_token_id; completions must end with EOS. Set tokenizer.eos_token")
    if use_chat_template:
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError(
                "use_chat_template is set, but the tokenizer has no chat template; "
                "turn use_chat_template off (plain text pairs) or use a chat model's tokenizer"
            )
        messages = [{"role": "user", "content": pair.prompt}] if isinstance(pair.prompt, str) else list(pair.prompt)
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        prompt_ids = list(tokenizer(text, add_special_tokens=False).input_ids)
    else:
        if pair.is_chat:
            raise ValueError("the pair holds chat messages, which need use_chat_template (and a chat template)")
        prompt_ids = list(tokenizer(pair.prompt, add_special_tokens=True).input_ids)

    def completion(turn: Turn, name: str) -> list[int]:
        return list(tokenizer(_completion_text(turn, name), add_special_tokens=False).input_ids) + [eos]

    return prompt_ids, completion(pair.chosen, "chosen"), completion(pair.rejected, "rejected")


# --------------------------------------------------------------------------- choosing pairs from verdicts


def make_pairs(
    statuses: Sequence[str],
    lengths: Sequence[int],
    *,
    rng: random.Random,
    max_pairs_per_prompt: int,
    length_tolerance: float | None = None,
) -> list[tuple[int, int]]:
    """Choose (chosen, rejected) completions of one prompt from the verifier's verdicts.

    A pair is a completion judged ``correct`` against one judged ``incorrect``;
    ``unverifiable`` completions (the verifier failed, not the model) are never
    used. At most ``max_pairs_per_prompt`` distinct pairs are chosen, greedily,
    each time the remaining candidate that

    1. reuses completions least (the larger, then the sum, of how often its two
       completions were already used): completions are spread over the pairs
       before any is used twice;
    2. with ``length_tolerance`` set, has the smallest length difference;
    3. comes first in a random order drawn from ``rng``.

    ``length_tolerance`` (a fraction, e.g. 0.2) admits only pairs whose token
    lengths differ by at most that fraction of the longer one, so that a reward
    model cannot learn "shorter (or longer) is better" from the pairs; among
    admitted pairs the closest in length is preferred. None admits all pairs.

    Args:
        statuses: (G,) verdict status of each completion of the prompt.
        lengths: (G,) token length of each completion.
        rng: the source of randomness (seeded by the caller).
        max_pairs_per_prompt: >= 1.
        length_tolerance: >= 0, or None.

    Returns:
        ``(chosen_index, rejected_index)`` pairs in choice order; empty when the
        prompt has no correct or no incorrect completion (or none within the
        length tolerance).
    """
    if len(statuses) != len(lengths):
        raise ValueError(f"statuses ({len(statuses)}) and lengths ({len(lengths)}) must have one entry per completion")
    unknown = sorted({s for s in statuses if s not in STATUSES})
    if unknown:
        raise ValueError(f"unknown verdict status {unknown[0]!r}; valid: {', '.join(STATUSES)}")
    if max_pairs_per_prompt < 1:
        raise ValueError(f"max_pairs_per_prompt must be >= 1, got {max_pairs_per_prompt}")
    if length_tolerance is not None and not length_tolerance >= 0:
        raise ValueError(
            f"length_tolerance must be >= 0 (a fraction of the longer completion) or None, got {length_tolerance}"
        )
    if any(n < 0 for n in lengths):
        raise ValueError("lengths must be >= 0 (token counts)")

    correct = [i for i, s in enumerate(statuses) if s == "correct"]
    incorrect = [i for i, s in enumerate(statuses) if s == "incorrect"]
    candidates = [
        (c, r)
        for c in correct
        for r in incorrect
        if length_tolerance is None or abs(lengths[c] - lengths[r]) <= length_tolerance * max(lengths[c], lengths[r])
    ]
    rng.shuffle(candidates)
    rank = {pair: i for i, pair in enumerate(candidates)}
    uses = [0] * len(statuses)  # how many chosen pairs each completion is in so far

    def key(pair: tuple[int, int]) -> tuple[int, int, int, int]:
        c, r = pair
        gap = abs(lengths[c] - lengths[r]) if length_tolerance is not None else 0
        return max(uses[c], uses[r]), uses[c] + uses[r], gap, rank[pair]

    chosen: list[tuple[int, int]] = []
    remaining = set(candidates)
    while remaining and len(chosen) < max_pairs_per_prompt:
        best = min(remaining, key=key)
        remaining.discard(best)
        chosen.append(best)
        uses[best[0]] += 1
        uses[best[1]] += 1
    return chosen
