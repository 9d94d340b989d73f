"""``rlvr pairs`` and the pair -> reward model / DPO pipeline, through the real command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from grpo.cli import main as rlvr_main
from grpo.commands.pairs import generate_pairs
from grpo.config import PairsConfig, load_config
from grpo.pairs import read_pairs
from pair_support import torch_threads

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
       "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
SAMPLING = ["--set", "group_size=4", "--set", "rollout.max_new_tokens=8", "--set", "rollout.engine=hf",
            "--set", "verifier=pair_support:even_length", "--set", "threads=1"]


def rlvr(*args, check=True):
    proc = subprocess.run([sys.executable, "-m", "grpo.cli", *args], capture_output=True, text=True, env=ENV,
                          timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"rlvr {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(autouse=True)
def one_thread():
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def pair_files(tiny_model_dir, tmp_path_factory):
    """Train and held-out pairs written by the real command line."""
    root = tmp_path_factory.mktemp("pairs")
    out = root / "pairs.jsonl"
    proc = rlvr("pairs", "--task", "arithmetic", "--model", str(tiny_model_dir), "--output", str(out),
                "--heldout-split", "test", "--set", "limit=16", "--set", "heldout_limit=8",
                "--set", "max_pairs_per_prompt=2", "--no-progress", *SAMPLING)
    return out, root / "pairs.test.jsonl", proc.stderr


def test_pairs_are_chosen_correct_rejected_incorrect_with_the_sampled_ids(pair_files, tiny_model_dir):
    from transformers import AutoTokenizer

    from tasks import get_task

    train_file, heldout_file, log = pair_files
    assert f"{train_file}:" in log and f"{heldout_file}:" in log
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    task = get_task("arithmetic")
    prompts = {}
    for path, split, limit in ((train_file, "train", 16), (heldout_file, "test", 8)):
        pairs = read_pairs(path)
        rows = task.rows(split, limit)
        assert pairs and len(pairs) <= 2 * limit
        per_prompt: dict[int, int] = {}
        for pair in pairs:
            meta = pair.meta
            assert meta["task"] == "arithmetic" and meta["split"] == split
            row = rows[meta["problem_id"]]
            assert pair.prompt == task.prompt(row) and meta["answer"] == row["answer"]
            # the verifier's judgement, recorded and true
            assert meta["chosen_verdict"]["status"] == "correct" and len(pair.chosen) % 2 == 0
            assert meta["rejected_verdict"]["status"] == "incorrect" and len(pair.rejected) % 2 == 1
            # the ids the policy sampled: the prompt as the task encodes it, completions that decode to the text
            assert meta["prompt_ids"] == task.encode(row, tokenizer)
            assert tokenizer.decode(meta["chosen_ids"], skip_special_tokens=True) == pair.chosen
            assert tokenizer.decode(meta["rejected_ids"], skip_special_tokens=True) == pair.rejected
            assert 1 <= len(meta["chosen_ids"]) <= 8
            per_prompt[meta["problem_id"]] = per_prompt.get(meta["problem_id"], 0) + 1
        assert max(per_prompt.values()) <= 2
        prompts[split] = {p.prompt for p in pairs}
    assert not prompts["train"] & prompts["test"]  # held-out pairs come from prompts training never sees


def test_pairs_are_seeded_and_length_matching_holds(pair_files, tiny_model_dir, tmp_path):
    train_file, _, _ = pair_files
    base = ["task=arithmetic", f"model.path={tiny_model_dir}", "limit=16", "max_pairs_per_prompt=2",
            "group_size=4", "rollout.max_new_tokens=8", "rollout.engine=hf", "verifier=pair_support:even_length",
            "threads=1"]
    again = tmp_path / "again.jsonl"
    generate_pairs(load_config(PairsConfig, None, [*base, f"output={again}"]), show_progress=False)
    assert again.read_bytes() == train_file.read_bytes()  # same seed, same pairs (the CLI ran in another process)
    other = tmp_path / "seed1.jsonl"
    generate_pairs(load_config(PairsConfig, None, [*base, f"output={other}", "seed=1"]), show_progress=False)
    assert other.read_bytes() != train_file.read_bytes()
    matched = tmp_path / "matched.jsonl"
    generate_pairs(load_config(PairsConfig, None, [*base, f"output={matched}", "length_tolerance=0"]),
                   show_progress=False)
    pairs = read_pairs(matched)
    assert pairs and all(len(p.meta["chosen_ids"]) == len(p.meta["rejected_ids"]) for p in pairs)


def test_pairs_refuse_bad_input_and_never_overwrite(pair_files, tiny_model_dir, tmp_path, capsys):
    train_file, _, _ = pair_files
    before = train_file.read_bytes()
    base = ["pairs", "--task", "arithmetic", "--model", str(tiny_model_dir), "--no-progress", *SAMPLING]
    assert rlvr_main([*base, "--output", str(train_file)]) == 2
    assert "already exists" in capsys.readouterr().err and train_file.read_bytes() == before
    out = tmp_path / "p.jsonl"
    assert rlvr_main([*base, "--output", str(out), "--split", "validation"]) == 2
    assert "no split 'validation'" in capsys.readouterr().err
    assert rlvr_main([*base, "--output", str(tmp_path / "p.txt")]) == 2
    assert ".jsonl" in capsys.readouterr().err
    assert rlvr_main([*base, "--output", str(out), "--set", "group_size=1"]) == 2
    assert "group_size" in capsys.readouterr().err
    # no correct sample at all (the task's own verifier on a random policy): an error, and no file
    assert rlvr_main(["pairs", "--task", "arithmetic", "--model", str(tiny_model_dir), "--no-progress",
                      "--output", str(out), "--set", "limit=2", "--set", "group_size=2",
                      "--set", "rollout.max_new_tokens=4", "--set", "rollout.engine=hf", "--set", "threads=1"]) == 2
    assert "no pairs from split 'train'" in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.iterdir())


@pytest.mark.slow
def test_reward_model_and_dpo_train_on_sampled_pairs(pair_files, tiny_model_dir, tmp_path, capsys):
    train_file, heldout_file, _ = pair_files
    data = ["--set", f"data.train={train_file}", "--set", f"data.heldout={heldout_file}",
            "--set", f"model.path={tiny_model_dir}", "--set", "steps=3", "--set", "batch_size=4",
            "--set", "optim.lr=1e-3", "--set", "threads=1", "--no-progress"]
    base = load_file(str(tiny_model_dir / "model.safetensors"))

    # the reward model
    rm = tmp_path / "rm"
    proc = rlvr("rm", "--output-dir", str(rm), *data)
    assert "reward model:" in proc.stdout
    final = rm / "checkpoints" / "step-3"
    stats = json.loads((final / "reward_stats.json").read_text())
    assert set(stats) == {"mean", "std", "n"} and stats["std"] > 0 and stats["n"] % 2 == 0
    weights = load_file(str(final / "model.safetensors"))
    assert not torch.equal(weights["model.embed_tokens.weight"], base["model.embed_tokens.weight"])
    report = json.loads((rm / "eval" / "report.json").read_text())
    assert report["heldout"]["pairs"] == len(read_pairs(heldout_file))
    assert report["data"]["train_file_counts"]["used_sampled_ids"] == len(read_pairs(train_file))
    assert [m["step"] for m in read_jsonl(rm / "metrics.jsonl")] == [1, 2, 3]
    assert (rm / "eval" / "report.md").is_file() and (rm / "config.yaml").is_file()

    # DPO on the same pairs; its run folder is one `rlvr eval` reads
    dpo = tmp_path / "dpo"
    proc = rlvr("dpo", "--output-dir", str(dpo), *data, "--set", "falling_window=3")
    assert "DPO model:" in proc.stdout
    metrics = read_jsonl(dpo / "metrics.jsonl")
    assert [m["step"] for m in metrics] == [1, 2, 3]
    assert all({"dpo/logps_chosen", "dpo/logps_rejected", "dpo/loss"} <= m.keys() for m in metrics)
    assert "eval/reward_accuracy" in metrics[-1] and "dpo/both_logps_falling" in metrics[-1]
    weights = load_file(str(dpo / "checkpoints" / "step-3" / "model.safetensors"))
    assert any(not torch.equal(weights[k], base[k]) for k in base)
    rlvr("eval", "--model", str(dpo), "--task", "arithmetic", "--limit", "2", "--n", "2", "--max-new-tokens", "4",
         "--engine", "hf", "--bootstrap", "0", "--threads", "1", "--no-progress")
    summary = json.loads((dpo / "eval" / "step-3-arithmetic-test" / "summary.json").read_text())
    assert summary["model_path"] == str(dpo / "checkpoints" / "step-3")

    # a second run into either folder is refused and changes nothing
    for command, folder in (("rm", rm), ("dpo", dpo)):
        before = (folder / "metrics.jsonl").read_text()
        assert rlvr_main([command, "--output-dir", str(folder), *data]) == 2
        assert "already holds a run" in capsys.readouterr().err
        assert (folder / "metrics.jsonl").read_text() == before
