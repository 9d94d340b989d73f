"""DPO: sequence log-probs against a one-at-a-time reference, the precomputed reference against a
frozen copy, learning a procedural preference with the metrics logged, and the both-falling alarm."""

from __future__ import annotations

import json
import random

import pytest
import torch

from grpo.config import DPOConfig, ModelConfig, load_config
from grpo.dpo import falling_together, sequence_logps, train_dpo
from grpo.models import load_policy
from grpo.pair_data import TokenPair
from grpo.pairs import PreferencePair, write_pairs
from pair_support import boxed_pairs, torch_threads


@pytest.fixture(autouse=True)
def one_thread():
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def pair_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("dpo_pairs")
    return (write_pairs(root / "train.jsonl", boxed_pairs("train", 96, 0)),
            write_pairs(root / "heldout.jsonl", boxed_pairs("test", 32, 1)))


def dpo_config(model_dir, pair_files, out, *extra):
    train, heldout = pair_files
    return load_config(DPOConfig, None, [
        f"model.path={model_dir}", f"data.train={train}", f"data.heldout={heldout}", f"output_dir={out}",
        "batch_size=8", "optim.micro_batch_size=4", "optim.lr=1e-3", "optim.warmup_steps=0", *extra])


def read_metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_sequence_logps_match_one_sequence_at_a_time(tiny_model_dir):
    model, tokenizer = load_policy(ModelConfig(path=str(tiny_model_dir)))
    model.eval()
    rng = random.Random(0)
    vocab = model.config.vocab_size

    def ids(n):
        return [rng.randrange(5, vocab) for _ in range(n)]

    pairs = [TokenPair(ids(p), ids(c), ids(r)) for p, c, r in [(3, 5, 2), (7, 1, 6), (2, 4, 4)]]
    with torch.no_grad():
        chosen, rejected = sequence_logps(model, pairs, tokenizer.pad_token_id)
        for i, pair in enumerate(pairs):
            for completion, got in ((pair.chosen_ids, chosen[i]), (pair.rejected_ids, rejected[i])):
                full = torch.tensor([pair.prompt_ids + completion])
                logits = model(input_ids=full).logits[0].float()  # (L, V), no padding at all
                logps = torch.log_softmax(logits, -1)
                P = len(pair.prompt_ids)
                expected = sum(float(logps[P - 1 + t, tok]) for t, tok in enumerate(completion))
                assert float(got) == pytest.approx(expected, abs=1e-4)


def test_precomputed_reference_equals_a_frozen_copy(tiny_model_dir, pair_files, tmp_path):
    runs = {}
    for reference in ("precomputed", "model"):
        cfg = dpo_config(tiny_model_dir, pair_files, tmp_path / reference, "steps=3", f"reference={reference}")
        runs[reference] = (train_dpo(cfg, show_progress=False), read_metrics(tmp_path / reference))
    (pre_ckpt, pre_metrics), (copy_ckpt, copy_metrics) = runs["precomputed"], runs["model"]
    for a, b in zip(pre_metrics, copy_metrics):
        for key in ("dpo/loss", "dpo/rewards_chosen", "dpo/rewards_rejected", "dpo/logps_chosen"):
            assert a[key] == pytest.approx(b[key], abs=1e-5), key
    from safetensors.torch import load_file

    pre, copy = load_file(str(pre_ckpt / "model.safetensors")), load_file(str(copy_ckpt / "model.safetensors"))
    for name in pre:
        torch.testing.assert_close(pre[name], copy[name], atol=1e-5, rtol=1e-4)


def test_dpo_learns_the_preference_and_logs_both_log_probs(tiny_model_dir, pair_files, tmp_path):
    run = tmp_path / "run"
    final = train_dpo(dpo_config(tiny_model_dir, pair_files, run, "steps=12", "eval_every=6", "falling_window=4"),
                      show_progress=False)
    metrics = read_metrics(run)
    assert [m["step"] for m in metrics] == list(range(1, 13))
    first, last = metrics[0], metrics[-1]
    for key in ("dpo/loss", "dpo/logps_chosen", "dpo/logps_rejected", "dpo/logps_chosen_change",
                "dpo/logps_rejected_change", "dpo/rewards_chosen", "dpo/rewards_rejected", "dpo/reward_accuracy",
                "dpo/reward_margin", "optim/grad_norm", "optim/lr"):
        assert key in last, key
    # step 1 runs on the reference's own weights: no change yet, loss log 2
    assert first["dpo/logps_chosen_change"] == pytest.approx(0.0, abs=1e-4)
    assert first["dpo/loss"] == pytest.approx(0.6931, abs=1e-3)
    assert [m["step"] for m in metrics if "dpo/both_logps_falling" in m] == [4, 8, 12]
    assert [m["step"] for m in metrics if "eval/reward_accuracy" in m] == [6, 12]
    # held-out pairs, never trained on, are now ordered right
    assert last["eval/reward_accuracy"] >= 0.9 and last["eval/reward_margin"] > 0
    assert last["eval/logps_chosen_change"] > last["eval/logps_rejected_change"]
    report = json.loads((run / "eval" / "report.json").read_text())
    assert report["heldout"]["reward_accuracy"] == last["eval/reward_accuracy"]
    # the final checkpoint is a causal LM with changed weights
    from transformers import AutoModelForCausalLM

    trained = AutoModelForCausalLM.from_pretrained(final)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert any(not torch.equal(a, b) for a, b in zip(trained.state_dict().values(), base.state_dict().values()))
    assert (run / "config.yaml").read_text().count("beta: 0.1") == 1


def test_falling_together():
    assert falling_together([], [], 3) is None
    assert falling_together([-1.0, -2.0], [-1.0, -2.0], 3) is None  # the window is not complete
    # first window: compared with the reference (0)
    assert falling_together([-1.0, -2.0, -3.0], [-0.5, -0.5, -0.5], 3) == pytest.approx((-2.0, -0.5))
    assert falling_together([-1.0, -2.0, -3.0], [0.5, 0.5, 0.5], 3) is None  # rejected rose
    # later windows: compared with the window before
    chosen = [1.0, 1.0, 0.0, 0.0]
    rejected = [-1.0, -1.0, -3.0, -3.0]
    assert falling_together(chosen, rejected, 2) == pytest.approx((-1.0, -2.0))
    assert falling_together(chosen[:3] + [5.0], rejected, 2) is None  # chosen rose on average
    with pytest.raises(ValueError):
        falling_together([1.0], [], 1)


def test_dpo_warns_when_both_log_probs_fall(tiny_model_dir, tmp_path, capfd):
    """The chosen completion is a prefix of the rejected one (" 3" against " 3 3 3 3 3 3"): the cheapest
    way to widen the gap is to lower the probability of everything after the prompt, and at a large
    learning rate both log-probs fall within a few steps, the gap growing all the while."""
    prompt = "Question: What is 1 + 2?\nAnswer:"
    train = write_pairs(tmp_path / "train.jsonl", [PreferencePair(prompt, " 3", " 3 3 3 3 3 3")] * 8)
    cfg = load_config(DPOConfig, None, [
        f"model.path={tiny_model_dir}", f"data.train={train}", "data.heldout_fraction=0",
        f"output_dir={tmp_path / 'run'}", "batch_size=8", "optim.lr=0.01", "optim.warmup_steps=0", "steps=4",
        "falling_window=2"])
    train_dpo(cfg, show_progress=False)
    metrics = read_metrics(tmp_path / "run")
    assert [m.get("dpo/both_logps_falling") for m in metrics] == [None, 0.0, None, 1.0]
    assert metrics[-1]["dpo/logps_chosen_change"] < -1 and metrics[-1]["dpo/logps_rejected_change"] < -1
    assert metrics[-1]["dpo/reward_margin"] > 0  # while the gap grew
    err = capfd.readouterr().err
    assert err.count("warning: over steps 3-4 the log-probs of both the chosen") == 1


def test_dpo_bad_input_writes_nothing(tiny_model_dir, pair_files, tmp_path, capsys):
    from grpo.cli import main as rlvr_main

    out = tmp_path / "run"
    base = ["dpo", "--set", f"model.path={tiny_model_dir}", "--output-dir", str(out), "--no-progress"]
    assert rlvr_main([*base, "--set", f"data.train={pair_files[0]}", "--set", "beta=0"]) == 2
    assert "'beta' = 0" in capsys.readouterr().err
    assert rlvr_main([*base, "--set", f"data.train={tmp_path / 'missing.jsonl'}"]) == 2
    assert "missing.jsonl: no such pair file" in capsys.readouterr().err
    assert rlvr_main([*base, "--set", f"data.train={pair_files[0]}", "--set", "model.path=/nonexistent/model"]) == 2
    capsys.readouterr()
    assert not out.exists()
