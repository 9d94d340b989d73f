"""Tests for grpo.pairs: pair files (JSON Lines and Parquet), tokenization with real tokenizers, pair selection."""

from __future__ import annotations

import dataclasses
import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from grpo.pairs import (
    PairFileError,
    PreferencePair,
    make_pairs,
    pair_to_row,
    read_pairs,
    render_pair,
    write_pairs,
)


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def write_parquet(path: Path, rows: list[dict[str, Any]]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


TEXT_ROW = {"prompt": "What is 2 + 2?", "chosen": " 4", "rejected": " 5"}
CHAT_ROW = {
    "prompt": [{"role": "system", "content": "Be brief."}, user("What is 2 + 2?")],
    "chosen": [assistant("4")],
    "rejected": [assistant("5")],
}
IMPLICIT_ROW = {  # multi-turn: the first answer is shared, so it belongs to the prompt
    "chosen": [user("Hi"), assistant("Hello!"), user("What is 3 * 3?"), assistant("9")],
    "rejected": [user("Hi"), assistant("Hello!"), user("What is 3 * 3?"), assistant("6")],
}


# --------------------------------------------------------------------------- reading


def test_read_the_three_layouts(tmp_path: Path) -> None:
    rows = [
        TEXT_ROW,
        dict(TEXT_ROW, margin=2, source="gsm8k", meta={"problem": 7}),
        CHAT_ROW,
        IMPLICIT_ROW,
    ]
    pairs = read_pairs(write_jsonl(tmp_path / "pairs.jsonl", rows))
    assert len(pairs) == 4
    text, with_margin, chat, implicit = pairs

    assert (text.prompt, text.chosen, text.rejected, text.margin, text.meta) == ("What is 2 + 2?", " 4", " 5", None, {})
    assert not text.is_chat
    assert with_margin.margin == 2.0 and isinstance(with_margin.margin, float)
    assert with_margin.meta == {"problem": 7, "source": "gsm8k"}  # extra columns are kept in meta

    assert chat.is_chat
    assert chat.prompt == tuple(CHAT_ROW["prompt"])
    assert chat.chosen == (assistant("4"),) and chat.rejected == (assistant("5"),)

    assert implicit.prompt == (user("Hi"), assistant("Hello!"), user("What is 3 * 3?"))
    assert implicit.chosen == (assistant("9"),) and implicit.rejected == (assistant("6"),)


def test_read_parquet(tmp_path: Path) -> None:
    text = write_parquet(tmp_path / "text.parquet", [TEXT_ROW, dict(TEXT_ROW, chosen=" four")])
    assert [p.chosen for p in read_pairs(text)] == [" 4", " four"]
    # message lists are Parquet list<struct<role, content>> columns, as in HF conversational datasets
    chat = write_parquet(tmp_path / "chat.parquet", [CHAT_ROW, dict(CHAT_ROW, chosen=[assistant("four")])])
    pairs = read_pairs(chat)
    assert pairs[0] == PreferencePair(CHAT_ROW["prompt"], CHAT_ROW["chosen"], CHAT_ROW["rejected"])
    assert pairs[1].chosen == (assistant("four"),)
    implicit = write_parquet(tmp_path / "implicit.parquet", [IMPLICIT_ROW])
    assert read_pairs(implicit)[0].prompt[-1] == user("What is 3 * 3?")


def test_read_gzipped_jsonl(tmp_path: Path) -> None:
    import gzip

    path = tmp_path / "pairs.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write(json.dumps(TEXT_ROW) + "\n")
    assert read_pairs(path)[0].chosen == " 4"


BAD_ROWS: list[tuple[Any, str]] = [
    ({"prompt": "p", "rejected": "r"}, 'missing field "chosen"'),
    ({"prompt": "p", "chosen": None, "rejected": "r"}, 'missing field "chosen"'),
    ({"prompt": "p", "chosen": "c"}, 'missing field "rejected"'),
    ({"prompt": 3, "chosen": "c", "rejected": "r"}, "prompt must be text or a list of messages, got int"),
    ({"prompt": "p", "chosen": {"role": "assistant", "content": "c"}, "rejected": "r"}, "chosen must be text or a list"),
    ({"prompt": [user("p")], "chosen": [{"role": "assistant"}], "rejected": [assistant("r")]}, "chosen[0] needs a text 'content'"),
    ({"prompt": [user("p")], "chosen": ["c"], "rejected": [assistant("r")]}, "chosen[0] must be a message object"),
    ({"prompt": [user("p")], "chosen": [], "rejected": [assistant("r")]}, "chosen is an empty message list"),
    ({"prompt": "p", "chosen": [assistant("c")], "rejected": [assistant("r")]}, "prompt is text but chosen, rejected are message lists"),
    ({"chosen": "full text c", "rejected": "full text r"}, 'add a "prompt" field'),
    ({"chosen": [user("a"), assistant("c")], "rejected": [user("b"), assistant("r")]}, "do not open with the same message"),
    ({"chosen": [user("a"), assistant("c")], "rejected": [user("a")]}, '"rejected" has no message after'),
    ({"chosen": [user("a"), assistant("c")], "rejected": [user("a"), assistant("c")]}, "has no message after"),
    (dict(TEXT_ROW, margin="big"), "margin must be a number"),
    (dict(TEXT_ROW, margin=True), "margin must be a number"),
    (dict(TEXT_ROW, meta=[1]), 'field "meta" must be an object'),
    ("[1, 2]", "expected a JSON object"),
    ("{not json", "not valid JSON"),
]


@pytest.mark.parametrize("bad,message", BAD_ROWS)
def test_bad_row_names_file_line_and_problem(tmp_path: Path, bad: Any, message: str) -> None:
    path = write_jsonl(tmp_path / "pairs.jsonl", [TEXT_ROW, "", CHAT_ROW, bad, TEXT_ROW])  # line 2 is blank
    with pytest.raises(PairFileError) as info:
        read_pairs(path)
    text = str(info.value)
    assert text.startswith(f"{path}:4: "), text
    assert message in text, text
    assert isinstance(info.value, ValueError)


def test_bad_parquet_row_is_named(tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "pairs.parquet", [TEXT_ROW, TEXT_ROW, dict(TEXT_ROW, chosen=None)])
    with pytest.raises(PairFileError, match=r"pairs\.parquet row 3: missing field \"chosen\""):
        read_pairs(path)
    (tmp_path / "broken.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(PairFileError, match="broken.parquet: not a readable Parquet file"):
        read_pairs(tmp_path / "broken.parquet")


def test_empty_missing_and_unknown_files(tmp_path: Path) -> None:
    for content in ("", "\n  \n"):
        (tmp_path / "empty.jsonl").write_text(content)
        with pytest.raises(PairFileError, match="empty.jsonl: holds no pairs"):
            read_pairs(tmp_path / "empty.jsonl")
    with pytest.raises(PairFileError, match="no such pair file"):
        read_pairs(tmp_path / "absent.jsonl")
    (tmp_path / "pairs.csv").write_text("prompt,chosen,rejected\n")
    with pytest.raises(PairFileError, match=r"use a \.jsonl .* or \.parquet"):
        read_pairs(tmp_path / "pairs.csv")


def test_preference_pair_is_frozen_and_checked() -> None:
    pair = PreferencePair("p", "c", "r")
    with pytest.raises(dataclasses.FrozenInstanceError):
        pair.chosen = "x"  # type: ignore[misc]
    assert PreferencePair([user("p")], [assistant("c")], [assistant("r")]).prompt == (user("p"),)  # lists -> tuples
    with pytest.raises(ValueError, match="finite"):
        PreferencePair("p", "c", "r", margin=float("inf"))


# --------------------------------------------------------------------------- writing


def test_write_read_round_trip(tmp_path: Path) -> None:
    pairs = [
        PreferencePair("2+2=", " 4", " 5"),
        PreferencePair("ünïcode ✓", "a\nb", "", margin=0.5, meta={"task": "arithmetic", "statuses": ["correct", "incorrect"]}),
        PreferencePair(CHAT_ROW["prompt"], CHAT_ROW["chosen"], CHAT_ROW["rejected"], meta={"problem_id": 3}),
    ]
    path = write_pairs(tmp_path / "out" / "pairs.jsonl", pairs)
    assert read_pairs(path) == pairs
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3
    assert json.loads(lines[0]) == {"prompt": "2+2=", "chosen": " 4", "rejected": " 5"}  # the plain TRL layout
    assert json.loads(lines[1])["prompt"] == "ünïcode ✓" and lines[1].isascii()  # one line whatever the text holds
    assert pair_to_row(pairs[2])["chosen"] == [assistant("4")]
    assert sorted(p.name for p in path.parent.iterdir()) == ["pairs.jsonl"]  # no temporary file left


def test_write_is_atomic(tmp_path: Path) -> None:
    path = write_pairs(tmp_path / "pairs.jsonl", [PreferencePair("old", "c", "r")])
    before = path.read_text()

    def failing():
        yield PreferencePair("new", "c", "r")
        raise RuntimeError("generation crashed")

    with pytest.raises(RuntimeError, match="crashed"):
        write_pairs(path, failing())
    assert path.read_text() == before  # the old file is intact, not half overwritten
    assert [p.name for p in tmp_path.iterdir()] == ["pairs.jsonl"]
    write_pairs(path, [PreferencePair("new", "c", "r")])
    assert read_pairs(path)[0].prompt == "new"


# --------------------------------------------------------------------------- tokenization


CORPUS = [
    "What is 2 + 2? The answer is 4.",
    "What is 3 * 3? It is 9, not 6.",
    "Be brief. Hello! Hi there.",
] * 20


@pytest.fixture(scope="module")
def chat_tokenizer():
    """The project's tiny byte-level BPE tokenizer, with its ChatML-style chat template."""
    from grpo.tiny_model import train_tokenizer

    return train_tokenizer(CORPUS, vocab_size=300)


@pytest.fixture(scope="module")
def bos_tokenizer():
    """A word-level tokenizer that adds a BOS token to encoded text, and has no chat template."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    words = sorted({w for text in CORPUS for w in text.split()})
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, **{w: i + 3 for i, w in enumerate(words)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")


def test_render_text_pair(chat_tokenizer, bos_tokenizer) -> None:
    pair = PreferencePair("What is 2 + 2?", " The answer is 4.", " The answer is 5.")
    prompt, chosen, rejected = render_pair(pair, chat_tokenizer, use_chat_template=False)
    eos = chat_tokenizer.eos_token_id
    assert prompt == chat_tokenizer("What is 2 + 2?").input_ids
    assert chosen[-1] == eos and rejected[-1] == eos
    assert chat_tokenizer.decode(chosen[:-1]) == " The answer is 4."
    assert chat_tokenizer.decode(rejected[:-1]) == " The answer is 5."
    assert eos not in prompt

    # a tokenizer that adds BOS: the prompt starts with it, the completions do not contain it
    prompt, chosen, rejected = render_pair(PreferencePair("What is 2", "is 4.", "is 9,"), bos_tokenizer, False)
    bos, eos = bos_tokenizer.bos_token_id, bos_tokenizer.eos_token_id
    assert prompt[0] == bos and prompt.count(bos) == 1
    assert bos not in chosen and bos not in rejected
    assert chosen == [bos_tokenizer.convert_tokens_to_ids("is"), bos_tokenizer.convert_tokens_to_ids("4."), eos]


def test_render_chat_pair(chat_tokenizer) -> None:
    pair = PreferencePair(CHAT_ROW["prompt"], CHAT_ROW["chosen"], CHAT_ROW["rejected"])
    prompt, chosen, rejected = render_pair(pair, chat_tokenizer, use_chat_template=True)
    want_prompt = (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWhat is 2 + 2?<|im_end|>\n<|im_start|>assistant\n"
    )
    assert chat_tokenizer.decode(prompt) == want_prompt
    im_start = chat_tokenizer.convert_tokens_to_ids("<|im_start|>")
    assert prompt.count(im_start) == 3  # special tokens are single ids, not spelled out
    assert chosen == chat_tokenizer("4", add_special_tokens=False).input_ids + [chat_tokenizer.eos_token_id]
    assert chat_tokenizer.decode(rejected) == "5<|endoftext|>"
    # prompt + completion is what the policy is trained on: the template's prompt, then the answer, then EOS
    assert chat_tokenizer.decode(prompt + chosen) == want_prompt + "4<|endoftext|>"

    # a text prompt under a chat template is one user message
    prompt, _, _ = render_pair(PreferencePair("What is 2 + 2?", "4", "5"), chat_tokenizer, use_chat_template=True)
    assert chat_tokenizer.decode(prompt) == "<|im_start|>user\nWhat is 2 + 2?<|im_end|>\n<|im_start|>assistant\n"

    # implicit-prompt pairs render the shared turns as the prompt
    implicit = read_pairs_from_rows([IMPLICIT_ROW])[0]
    prompt, chosen, _ = render_pair(implicit, chat_tokenizer, use_chat_template=True)
    assert chat_tokenizer.decode(prompt).endswith("What is 3 * 3?<|im_end|>\n<|im_start|>assistant\n")
    assert chat_tokenizer.decode(chosen) == "9<|endoftext|>"


def read_pairs_from_rows(rows: list[dict[str, Any]]) -> list[PreferencePair]:
    from grpo.pairs import pair_from_row

    return [pair_from_row(r) for r in rows]


def test_render_errors(chat_tokenizer, bos_tokenizer) -> None:
    chat = PreferencePair(CHAT_ROW["prompt"], CHAT_ROW["chosen"], CHAT_ROW["rejected"])
    with pytest.raises(ValueError, match="need use_chat_template"):
        render_pair(chat, chat_tokenizer, use_chat_template=False)
    with pytest.raises(ValueError, match="no chat template"):
        render_pair(PreferencePair("p", "c", "r"), bos_tokenizer, use_chat_template=True)
    multi = PreferencePair([user("p")], [assistant("a"), user("more?"), assistant("b")], [assistant("r")])
    with pytest.raises(ValueError, match=r"single assistant message.*\['assistant', 'user', 'assistant'\]"):
        render_pair(multi, chat_tokenizer, use_chat_template=True)
    not_assistant = PreferencePair([user("p")], [user("c")], [assistant("r")])
    with pytest.raises(ValueError, match="single assistant message"):
        render_pair(not_assistant, chat_tokenizer, use_chat_template=True)


# --------------------------------------------------------------------------- make_pairs


def random_group(rng: random.Random, g: int) -> tuple[list[str], list[int]]:
    statuses = [rng.choice(["correct", "incorrect", "unverifiable"]) for _ in range(g)]
    lengths = [rng.randint(1, 60) for _ in range(g)]
    return statuses, lengths


@pytest.mark.parametrize("g", [1, 2, 4, 8, 16])
@pytest.mark.parametrize("max_pairs", [1, 3, 100])
@pytest.mark.parametrize("tolerance", [None, 0.0, 0.25])
def test_make_pairs_properties(g: int, max_pairs: int, tolerance: float | None) -> None:
    for seed in range(20):
        statuses, lengths = random_group(random.Random(seed), g)
        pairs = make_pairs(statuses, lengths, rng=random.Random(100 + seed), max_pairs_per_prompt=max_pairs,
                           length_tolerance=tolerance)
        correct = [i for i, s in enumerate(statuses) if s == "correct"]
        incorrect = [i for i, s in enumerate(statuses) if s == "incorrect"]

        def admitted(c: int, r: int) -> bool:
            return tolerance is None or abs(lengths[c] - lengths[r]) <= tolerance * max(lengths[c], lengths[r])

        candidates = [(c, r) for c in correct for r in incorrect if admitted(c, r)]
        assert len(pairs) == min(max_pairs, len(candidates))
        assert len(set(pairs)) == len(pairs)  # distinct
        for c, r in pairs:
            assert statuses[c] == "correct" and statuses[r] == "incorrect"  # unverifiable never used
            assert admitted(c, r)
        if pairs and tolerance is not None:
            # the first pair is the closest in length of all admitted pairs
            assert abs(lengths[pairs[0][0]] - lengths[pairs[0][1]]) == min(abs(lengths[c] - lengths[r]) for c, r in candidates)
        if tolerance is None:
            # completions are spread: no completion appears twice before every one of the smaller side is used
            k = min(len(correct), len(incorrect), len(pairs))
            first = pairs[:k]
            assert len({c for c, _ in first}) == k and len({r for _, r in first}) == k
        # seeded: the same rng seed gives the same pairs
        again = make_pairs(statuses, lengths, rng=random.Random(100 + seed), max_pairs_per_prompt=max_pairs,
                           length_tolerance=tolerance)
        assert again == pairs


def test_make_pairs_hand_examples() -> None:
    statuses = ["unverifiable", "correct", "incorrect", "unverifiable", "incorrect", "correct"]
    lengths = [10, 20, 100, 21, 22, 50]
    # length matching: 1 (len 20) pairs with 4 (len 22), 5 (len 50) with nothing within 10%
    assert make_pairs(statuses, lengths, rng=random.Random(0), max_pairs_per_prompt=4, length_tolerance=0.1) == [(1, 4)]
    # 30%: 5 (len 50) is still too far from 2 (len 100: 50 > 30) and from 4 (len 22: 28 > 15)
    assert make_pairs(statuses, lengths, rng=random.Random(0), max_pairs_per_prompt=4, length_tolerance=0.3) == [(1, 4)]
    # 60% admits (5, 2) (50 <= 60) and (5, 4) (28 <= 30) too; the closest, (1, 4), comes first
    got = make_pairs(statuses, lengths, rng=random.Random(0), max_pairs_per_prompt=4, length_tolerance=0.6)
    assert got[0] == (1, 4) and set(got) == {(1, 4), (5, 2), (5, 4)}
    assert got[1] == (5, 2)  # (5, 2) reuses nothing; (5, 4) would reuse completion 4
    # no correct or no incorrect completion: no pair
    assert make_pairs(["correct", "unverifiable"], [1, 2], rng=random.Random(0), max_pairs_per_prompt=5) == []
    assert make_pairs(["incorrect"] * 3, [1, 2, 3], rng=random.Random(0), max_pairs_per_prompt=5) == []
    assert make_pairs([], [], rng=random.Random(0), max_pairs_per_prompt=5) == []


def test_make_pairs_choice_is_random_and_uniform() -> None:
    """With one pair per prompt and no length matching, every candidate is equally likely."""
    statuses = ["correct", "incorrect", "correct", "incorrect", "incorrect", "unverifiable"]
    lengths = [5] * 6
    rng = random.Random(1234)
    counts = Counter(make_pairs(statuses, lengths, rng=rng, max_pairs_per_prompt=1)[0] for _ in range(6000))
    assert set(counts) == {(c, r) for c in (0, 2) for r in (1, 3, 4)}
    assert all(850 < n < 1150 for n in counts.values()), counts  # expected 1000 each


def test_make_pairs_errors() -> None:
    rng = random.Random(0)
    with pytest.raises(ValueError, match="unknown verdict status 'right'.*correct, incorrect, unverifiable"):
        make_pairs(["correct", "right"], [1, 1], rng=rng, max_pairs_per_prompt=1)
    with pytest.raises(ValueError, match="one entry per completion"):
        make_pairs(["correct"], [1, 2], rng=rng, max_pairs_per_prompt=1)
    with pytest.raises(ValueError, match="max_pairs_per_prompt"):
        make_pairs(["correct"], [1], rng=rng, max_pairs_per_prompt=0)
    with pytest.raises(ValueError, match="length_tolerance"):
        make_pairs(["correct"], [1], rng=rng, max_pairs_per_prompt=1, length_tolerance=-0.1)
