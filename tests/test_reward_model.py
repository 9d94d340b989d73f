"""Reward models: training on a procedural preference, the saved folder as other tools load it,
the reward statistics PPO needs, the held-out report and its metrics, and refusals of bad input."""

from __future__ import annotations

import itertools
import json
import math
import random
from pathlib import Path

import pytest
import torch

from grpo.cli import main as rlvr_main
from grpo.config import ConfigError, ModelConfig, RewardModelConfig, load_config
from grpo.pair_data import TokenPair, tokenize_pairs
from grpo.pairs import write_pairs
from grpo.reward_model import (
    REWARD_STATS_FILE,
    RewardStats,
    init_reward_model,
    load_reward_model,
    load_reward_stats,
    right_pad,
    score_sequences,
)
from grpo.rm_eval import calibration_table, pairwise_metrics, roc_auc, within_group_order
from grpo.rm_train import margins, score_pairs, train_reward_model
from pair_support import boxed_pairs, torch_threads


@pytest.fixture(autouse=True)
def one_thread():
    with torch_threads(1):  # the runs below set their own thread count; the rest of the session keeps its own
        yield


@pytest.fixture(scope="module")
def trained_rm(tiny_model_dir, tmp_path_factory):
    """A reward model trained on boxed-vs-unboxed pairs, with the agreement check on fresh samples."""
    root = tmp_path_factory.mktemp("rm")
    train, heldout = write_pairs(root / "train.jsonl", boxed_pairs("train", 160, 0)), \
        write_pairs(root / "heldout.jsonl", boxed_pairs("test", 60, 1))
    cfg = load_config(RewardModelConfig, None, [
        f"model.path={tiny_model_dir}", f"data.train={train}", f"data.heldout={heldout}",
        f"output_dir={root / 'run'}", "steps=20", "batch_size=16", "optim.lr=1e-3", "optim.warmup_steps=0",
        "optim.micro_batch_size=16", "eval_every=10",
        f"agreement.policy={tiny_model_dir}", "agreement.verifier=pair_support:even_length",
        "agreement.problems=4", "agreement.n=4", "agreement.max_new_tokens=8", "agreement.engine=hf",
    ])
    with torch_threads(1):
        final = train_reward_model(cfg, show_progress=False)
    return cfg, final, root / "run"


def test_reward_model_learns_a_procedural_preference(trained_rm, tiny_model_dir):
    cfg, final, run = trained_rm
    report = json.loads((run / "eval" / "report.json").read_text())
    held = report["heldout"]
    assert held["pairs"] == 60
    assert held["accuracy"] >= 0.9
    # learned, not a lucky sign of the fresh head: the untrained head scores every pair alike (loss log 2)
    assert held["bt_loss"] < 0.3 and held["margin_mean"] > 1.0
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == list(range(1, 21))
    assert abs(metrics[0]["rm/bt_loss"] - math.log(2)) < 0.05
    assert [m["step"] for m in metrics if "eval/accuracy" in m] == [10, 20]
    assert {"rm/bt_loss", "rm/accuracy", "rm/margin_mean", "optim/grad_norm", "optim/lr"} <= metrics[-1].keys()
    # the calibration table holds every pair twice (both orders), and is symmetric
    bins = held["calibration"]["bins"]
    assert sum(b["count"] for b in bins) == 120 and len(bins) == cfg.calibration_bins
    assert [b["count"] for b in bins] == [b["count"] for b in reversed(bins)]
    assert "| bin | pairs | mean predicted | observed |" in (run / "eval" / "report.md").read_text()
    # the backbone was trained, not just the head
    from safetensors.torch import load_file

    base, trained = load_file(str(tiny_model_dir / "model.safetensors")), load_file(str(final / "model.safetensors"))
    assert not torch.equal(base["model.embed_tokens.weight"], trained["model.embed_tokens.weight"])
    assert trained["score.weight"].shape[0] == 1


def test_saved_model_loads_with_auto_classes_and_gives_the_same_scores(trained_rm):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    cfg, final, _ = trained_rm
    model = AutoModelForSequenceClassification.from_pretrained(final).eval()
    tokenizer = AutoTokenizer.from_pretrained(final)
    assert model.config.num_labels == 1 and model.config.pad_token_id == tokenizer.pad_token_id
    pairs = boxed_pairs("test", 6, 1)
    texts = [p.prompt + p.chosen + tokenizer.eos_token for p in pairs] + \
            [p.prompt + p.rejected + tokenizer.eos_token for p in pairs]
    enc = tokenizer(texts, padding=True, return_tensors="pt")  # the tokenizer's own padding side (left here)
    assert tokenizer.padding_side == "left"
    with torch.no_grad():
        theirs = model(**enc).logits[:, 0]
    ours_model, ours_tokenizer = load_reward_model(str(final))
    tokenized, _ = tokenize_pairs(pairs, ours_tokenizer, use_chat_template=False, max_length=512)
    ids = [p.prompt_ids + p.chosen_ids for p in tokenized] + [p.prompt_ids + p.rejected_ids for p in tokenized]
    # the texts tokenize to exactly what training scores: prompt ids + completion ids + EOS
    assert ids == [[t for t, m in zip(row, mask) if m] for row, mask in zip(enc.input_ids.tolist(),
                                                                             enc.attention_mask.tolist())]
    ours = score_sequences(ours_model, ids, ours_tokenizer.pad_token_id)
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)
    assert float((ours[:6] - ours[6:]).min()) > 0  # and it prefers the boxed answers
    # a run folder resolves to its newest checkpoint
    model_from_run, _ = load_reward_model(str(Path(cfg.output_dir)))
    torch.testing.assert_close(score_sequences(model_from_run, ids, ours_tokenizer.pad_token_id), ours)


def test_reward_stats_are_saved_with_the_model(trained_rm):
    cfg, final, run = trained_rm
    stats = load_reward_stats(final)
    assert json.loads((final / REWARD_STATS_FILE).read_text()) == {"mean": stats.mean, "std": stats.std, "n": stats.n}
    assert load_reward_stats(run) == stats  # a run folder: its newest checkpoint
    # the statistics are of the final model's rewards on every training completion
    model, tokenizer = load_reward_model(str(final))
    from grpo.pair_data import load_pair_data

    data = load_pair_data(cfg.data, tokenizer, cfg.seed)
    rewards = torch.cat(score_pairs(model, data.train, tokenizer.pad_token_id)).double()
    assert stats.n == 2 * len(data.train) == 320
    assert stats.mean == pytest.approx(float(rewards.mean()), abs=1e-5)
    assert stats.std == pytest.approx(float(rewards.std(unbiased=False)), rel=1e-4)
    normalized = stats.normalize(rewards)
    assert float(normalized.mean()) == pytest.approx(0.0, abs=1e-4)
    assert float(normalized.std(unbiased=False)) == pytest.approx(1.0, rel=1e-4)


def test_agreement_with_the_verifier_on_fresh_samples(trained_rm):
    _, _, run = trained_rm
    agreement = json.loads((run / "eval" / "report.json").read_text())["agreement"]
    assert agreement["samples"] == 16 and agreement["unverifiable"] == 0
    assert agreement["verifier"] == "pair_test_even_length"
    order = agreement["within_prompt_order"]
    assert order["pairs"] >= 1 and 0.0 <= order["accuracy"] <= 1.0
    assert agreement["auc"] is not None and 0.0 <= agreement["auc"] <= 1.0
    assert "Agreement with the verifier" in (run / "eval" / "report.md").read_text()


def test_missing_or_malformed_reward_stats_are_refused(tmp_path):
    (tmp_path / "config.json").write_text("{}")  # a model folder
    with pytest.raises(ConfigError) as exc:
        load_reward_stats(tmp_path / REWARD_STATS_FILE)
    assert str(tmp_path / REWARD_STATS_FILE) in str(exc.value) and "rlvr rm" in str(exc.value)
    for bad in ['{"mean": 0.1, "std": 0.0, "n": 10}', '{"mean": 0.1, "n": 10}', "[1, 2]", "not json",
                '{"mean": NaN, "std": 1.0, "n": 10}', '{"mean": 0.0, "std": 1.0, "n": 1}']:
        (tmp_path / REWARD_STATS_FILE).write_text(bad)
        with pytest.raises(ConfigError, match="malformed reward statistics"):
            load_reward_stats(tmp_path)
    (tmp_path / REWARD_STATS_FILE).write_text('{"mean": 0.5, "std": 2.0, "n": 10}')
    assert load_reward_stats(tmp_path) == RewardStats(0.5, 2.0, 10)
    assert torch.equal(RewardStats(0.5, 2.0, 10).normalize(torch.tensor([0.5, 2.5])), torch.tensor([0.0, 1.0]))


def test_load_reward_model_refuses_a_causal_lm(tiny_model_dir):
    with pytest.raises(ConfigError, match="is not a reward model"):
        load_reward_model(str(tiny_model_dir))


def test_scores_are_read_at_the_last_real_token_whatever_the_padding(tiny_model_dir):
    torch.manual_seed(0)
    model, tokenizer = init_reward_model(ModelConfig(path=str(tiny_model_dir)))
    model.eval()
    pad = tokenizer.pad_token_id
    assert model.config.pad_token_id == pad
    rng = random.Random(0)
    vocab = model.config.vocab_size
    sequences = [[rng.randrange(5, vocab) for _ in range(n)] for n in (3, 9, 5, 12)]
    alone = torch.cat([score_sequences(model, [s], pad) for s in sequences])
    batched = score_sequences(model, sequences, pad)  # right-padded
    torch.testing.assert_close(batched, alone, atol=1e-5, rtol=1e-5)
    # left padding through the plain model call, as a user of AutoModelForSequenceClassification might
    ids, mask = right_pad([list(reversed(s)) for s in sequences], pad)
    left_ids, left_mask = ids.flip(1), mask.flip(1)
    with torch.no_grad():
        left = model(input_ids=left_ids, attention_mask=left_mask).logits[:, 0]
    torch.testing.assert_close(left, alone, atol=1e-4, rtol=1e-4)
    # more padding leaves a score alone; a change to the last real token moves it
    padded_more = score_sequences(model, sequences + [[7] * 40], pad)
    torch.testing.assert_close(padded_more[:-1], alone, atol=1e-5, rtol=1e-5)
    changed = score_sequences(model, [sequences[0][:-1] + [(sequences[0][-1] + 1) % vocab]], pad)
    assert abs(float(changed[0] - alone[0])) > 1e-6
    with pytest.raises(ValueError, match="pad_token_id"):
        score_sequences(model, sequences, pad + 1)


# --------------------------------------------------------------------------- metrics against slow references


def slow_calibration(chosen, rejected, bins):
    rows = [[0, 0.0, 0.0] for _ in range(bins)]
    for c, r in zip(chosen.tolist(), rejected.tolist()):
        p = 1 / (1 + math.exp(-(c - r)))
        for prob, outcome in ((p, 1.0), (1 - p, 0.0)):
            b = min(int(prob * bins), bins - 1)
            rows[b][0] += 1
            rows[b][1] += prob
            rows[b][2] += outcome
    total = 2 * len(chosen)
    ece = sum(n / total * abs(o / n - s / n) for n, s, o in rows if n)
    return [(n, s / n if n else None, o / n if n else None) for n, s, o in rows], ece


@pytest.mark.parametrize("seed,n,bins", [(0, 1, 2), (1, 7, 5), (2, 50, 10), (3, 200, 20)])
def test_calibration_table_matches_a_loop(seed, n, bins):
    g = torch.Generator().manual_seed(seed)
    chosen, rejected = torch.randn(n, generator=g) * 3, torch.randn(n, generator=g) * 3
    table = calibration_table(chosen, rejected, bins)
    rows, ece = slow_calibration(chosen, rejected, bins)
    for got, (count, pred, obs) in zip(table["bins"], rows):
        assert got["count"] == count
        assert got["mean_predicted"] == (pytest.approx(pred) if pred is not None else None)
        assert got["observed"] == (pytest.approx(obs) if obs is not None else None)
    assert table["ece"] == pytest.approx(ece)


def slow_auc(scores, labels):
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    wins = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


@pytest.mark.parametrize("seed", range(5))
def test_roc_auc_and_within_group_order_match_loops(seed):
    rng = random.Random(seed)
    n = rng.randint(2, 40)
    scores = [float(rng.randint(0, 5)) for _ in range(n)]  # many ties
    labels = [rng.random() < 0.4 for _ in range(n)]
    groups = [rng.randint(0, 3) for _ in range(n)]
    s, y = torch.tensor(scores), torch.tensor(labels)
    if all(labels) or not any(labels):
        assert roc_auc(s, y) is None
    else:
        assert roc_auc(s, y) == pytest.approx(slow_auc(scores, labels))
    expected = [slow_auc([scores[i] for i in range(n) if groups[i] == g], [labels[i] for i in range(n) if groups[i] == g])
                * sum(labels[i] for i in range(n) if groups[i] == g) * sum(not labels[i] for i in range(n) if groups[i] == g)
                for g in set(groups)
                if any(labels[i] for i in range(n) if groups[i] == g) and any(not labels[i] for i in range(n) if groups[i] == g)]
    got = within_group_order(s, y, groups)
    total = sum(sum(labels[i] for i in range(n) if groups[i] == g) * sum(not labels[i] for i in range(n) if groups[i] == g)
                for g in set(groups))
    assert got["pairs"] == total
    assert got["accuracy"] == (pytest.approx(sum(expected) / total) if total else None)


def test_pairwise_metrics_and_margins():
    m = pairwise_metrics(torch.tensor([2.0, 0.0, 1.0, -1.0]), torch.tensor([1.0, 0.0, 3.0, -2.0]))
    assert m["accuracy"] == pytest.approx((1 + 0.5 + 0 + 1) / 4)
    assert m["margin_mean"] == pytest.approx((1 + 0 - 2 + 1) / 4)
    assert m["bt_loss"] == pytest.approx(sum(math.log1p(math.exp(-d)) for d in (1, 0, -2, 1)) / 4)
    pair = TokenPair([1], [2], [3])
    assert margins([pair, pair], use_margin=True) is None
    with_margin = [TokenPair([1], [2], [3], margin=0.5), pair]
    assert margins(with_margin, use_margin=True).tolist() == [0.5, 0.0]
    assert margins(with_margin, use_margin=False) is None


# --------------------------------------------------------------------------- refusals


def test_bad_input_writes_nothing_and_an_existing_run_is_refused(tiny_model_dir, tmp_path, capsys):
    good = write_pairs(tmp_path / "good.jsonl", boxed_pairs("train", 20, 0))
    bad = tmp_path / "bad.jsonl"
    bad.write_text(good.read_text().splitlines()[0] + "\n" + '{"prompt": "x", "chosen": " y"}\n')
    out = tmp_path / "run"
    base = ["rm", "--set", f"model.path={tiny_model_dir}", "--output-dir", str(out), "--no-progress",
            "--set", "steps=1", "--set", "batch_size=2", "--set", "threads=1"]
    # a pair file with a missing field: the error names the file and line; no run folder appears
    assert rlvr_main([*base, "--set", f"data.train={bad}"]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:2" in err and 'missing field "rejected"' in err
    assert not out.exists()
    # a value out of range
    assert rlvr_main([*base, "--set", f"data.train={good}", "--set", "center_coef=-1"]) == 2
    assert "center_coef" in capsys.readouterr().err and not out.exists()
    # a completed run is not overwritten
    assert rlvr_main([*base, "--set", f"data.train={good}"]) == 0
    before = (out / "metrics.jsonl").read_text()
    assert rlvr_main([*base, "--set", f"data.train={good}", "--set", "steps=2"]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert (out / "metrics.jsonl").read_text() == before


# --------------------------------------------------------------------------- pair data


def test_pair_data_reads_chat_parquet_and_uses_sampled_ids_only_when_they_fit(tiny_model_dir, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from grpo.config import PairDataConfig
    from grpo.models import load_tokenizer
    from grpo.pair_data import load_pair_data, split_by_prompt

    tokenizer = load_tokenizer(ModelConfig(path=str(tiny_model_dir)))
    rows = [{"prompt": [{"role": "user", "content": f"What is {i} + 1?"}],
             "chosen": [{"role": "assistant", "content": f" {i + 1}"}],
             "rejected": [{"role": "assistant", "content": f" {i + 2}"}]} for i in range(6)]
    chat = tmp_path / "chat.parquet"
    pq.write_table(pa.Table.from_pylist(rows), chat)
    data = load_pair_data(PairDataConfig(train=str(chat), use_chat_template=True, heldout_fraction=0.34), tokenizer, 0)
    assert len(data.train) == 4 and len(data.heldout) == 2
    pair = (data.train + data.heldout)[0]
    text = tokenizer.apply_chat_template(rows[0]["prompt"], tokenize=False, add_generation_prompt=True)
    everything = {tuple(p.prompt_ids) for p in data.train + data.heldout}
    assert tuple(tokenizer(text, add_special_tokens=False).input_ids) in everything
    assert pair.chosen_ids[-1] == tokenizer.eos_token_id
    # chat pairs need the chat template: the error names the file and the pair
    with pytest.raises(ConfigError, match=r"chat.parquet: pair 1: .*use_chat_template"):
        load_pair_data(PairDataConfig(train=str(chat)), tokenizer, 0)

    # sampled ids are used when they are this tokenizer's ids of the text, else the text is encoded
    prompt = "Question: What is 2 + 2?\nAnswer:"
    prompt_ids = tokenizer(prompt).input_ids
    chosen_ids = tokenizer(" 4").input_ids  # no EOS: as a completion cut at max_new_tokens
    rejected_ids = tokenizer(" 5").input_ids + [tokenizer.eos_token_id]
    meta = {"prompt_ids": prompt_ids, "chosen_ids": chosen_ids, "rejected_ids": rejected_ids}
    from grpo.pairs import PreferencePair

    good = PreferencePair(prompt, " 4", " 5", meta=meta)
    stale = PreferencePair(prompt, " 4", " 5", meta={**meta, "chosen_ids": tokenizer(" 7").input_ids})
    path = write_pairs(tmp_path / "ids.jsonl", [good, stale])
    cfg = PairDataConfig(train=str(path), heldout_fraction=0)
    data = load_pair_data(cfg, tokenizer, 0)
    assert data.summary["train_file_counts"]["used_sampled_ids"] == 1
    assert data.train[0].chosen_ids == chosen_ids  # as sampled, without the EOS a re-encoding would add
    assert data.train[1].chosen_ids == chosen_ids + [tokenizer.eos_token_id]  # re-encoded from the text
    data = load_pair_data(PairDataConfig(train=str(path), heldout_fraction=0, use_sampled_ids=False), tokenizer, 0)
    assert data.summary["train_file_counts"]["used_sampled_ids"] == 0
    # too long: dropped and counted; nothing left: an error that names the fix
    long = PreferencePair(prompt, " 4 4 4 4 4 4 4 4", " 5")
    mixed = write_pairs(tmp_path / "mixed.jsonl", [good, long])
    data = load_pair_data(PairDataConfig(train=str(mixed), heldout_fraction=0, max_length=len(prompt_ids) + 3),
                          tokenizer, 0)
    assert data.summary["train_file_counts"]["dropped_too_long"] == 1 and len(data.train) == 1
    with pytest.raises(ConfigError, match="raise data.max_length"):
        load_pair_data(PairDataConfig(train=str(path), max_length=8), tokenizer, 0)
    # the held-out split keeps all pairs of a prompt on one side, and is seeded
    pairs = [TokenPair([k], [1], [2], prompt_key=str(k)) for k in range(10) for _ in range(3)]
    train, held = split_by_prompt(pairs, 0.2, seed=3)
    assert len(held) == 6 and not {p.prompt_key for p in train} & {p.prompt_key for p in held}
    assert split_by_prompt(pairs, 0.2, seed=3) == (train, held)
