"""``rlvr demo --recipe rlhf``: every stage with a tiny budget, and bad input refused before anything is written."""

import json

import pytest

from grpo.commands.demo_rlhf import run_rlhf_demo
from grpo.config import ConfigError

# A budget that still gives pairs: the SFT policy must answer some prompts right and some wrong.
QUICK = {
    "sft": ["steps=250", "threads=2"],
    "pairs": ["limit=32", "heldout_limit=24", "threads=2"],
    "rm": ["steps=4", "eval_every=0", "agreement.problems=4", "threads=2"],
    "ppo": ["steps=3", "algo.prompts_per_step=8", "algo.mini_batch_size=8", "algo.critic_warmup_steps=1",
            "monitor.window=3", "eval.every=0", "save_every=3", "threads=2"],
    "grpo": ["steps=3", "algo.prompts_per_step=1", "eval.every=0", "save_every=3", "threads=2"],
    "dpo": ["steps=3", "eval_every=0", "threads=2"],
}


@pytest.mark.slow
def test_rlhf_demo_quick_budget_writes_summary_and_plot(tmp_path):
    out = tmp_path / "demo-rlhf"
    summary = run_rlhf_demo(out, seed=3, show_progress=False, heldout=8, overrides=QUICK)
    assert json.loads((out / "summary.json").read_text()) == summary
    for key in ("sft_pass_at_1", "ppo_pass_at_1", "grpo_pass_at_1", "dpo_pass_at_1", "rm_heldout_accuracy"):
        assert 0 <= summary[key] <= 1, key
    assert summary["n_heldout"] == 8 and summary["seed"] == 3 and summary["wall_seconds"] > 0
    assert summary["budget_steps"] == 3 and summary["budget_samples_per_step"] == 8
    assert summary["pairs_train"] > 0 and summary["pairs_heldout"] > 0
    assert isinstance(summary["monitor_flagged"], bool)
    for name in ("sft", "ppo", "grpo", "dpo"):
        assert 0 <= summary[f"{name}_boxed_share"] <= 1 and 0 <= summary[f"{name}_step_by_step_share"] <= 1
    # PPO's and GRPO's figures are their runs' own final evaluations, on the same 8 problems
    for name in ("ppo", "grpo"):
        final = json.loads((out / name / "eval" / "step-3" / "summary.json").read_text())
        assert summary[f"{name}_pass_at_1"] == final["metrics"]["pass@1"]["value"] and final["n_problems"] == 8
    # the PPO run's proxy-vs-gold plot, copied beside the summary
    assert (out / "plots" / "overoptimization.png").stat().st_size > 0
    assert (out / "ppo" / "plots" / "overoptimization.png").is_file()
    ppo_config = (out / "ppo" / "config.yaml").read_text()
    assert "verifier_weight: 0.0" in ppo_config and "action: warn" in ppo_config


def test_folder_that_is_not_a_demo_is_refused_untouched(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="not a demo folder"):
        run_rlhf_demo(out, show_progress=False)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


@pytest.mark.parametrize("overrides, message", [
    ({"ppo": ["steps=50"]}, "same budget"),
    ({"grpo": ["algo.group_size=4"]}, "same budget"),
    ({"grpo": ["eval.temperature=0.5"]}, "every policy is evaluated"),
    ({"reward": ["steps=3"]}, "unknown stage"),
    ({"rm": ["no_such_field=1"]}, "no_such_field"),
])
def test_bad_overrides_fail_before_anything_is_written(tmp_path, overrides, message):
    out = tmp_path / "demo-rlhf"
    with pytest.raises(ConfigError, match=message):
        run_rlhf_demo(out, show_progress=False, overrides=overrides)
    assert not out.exists()
