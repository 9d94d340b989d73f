"""The reward-hacking monitor (grpo/monitor.py): the rule on constructed series, the best-gold mark, and a PPO run
whose reward model pays for what the verifier forbids, stopped by the monitor."""

import json
import math

import numpy as np
import pytest
import torch

from grpo.config import PPOConfig, load_config
from grpo.monitor import (RewardHackingMonitor, least_squares_slope, offer_best_gold, prune_checkpoints,
                          read_best_gold, sqrt_kl, trend)
from grpo.ppo import train_ppo
from grpo.runfolder import RunStopped
from ppo_support import build_reward_model


@pytest.fixture(autouse=True)
def keep_torch_threads():
    """In-process runs set torch's thread count from their config; later tests get theirs back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)

# --------------------------------------------------------------------------- the rule, on constructed series


def reference_fit(xs, ys):
    """Ordinary least squares by the normal equations: (slope, its standard error)."""
    X = np.column_stack([np.ones(len(xs)), np.asarray(xs, dtype=float)])
    y = np.asarray(ys, dtype=float)
    beta = np.linalg.solve(X.T @ X, X.T @ y)
    resid = y - X @ beta
    sigma2 = resid @ resid / (len(xs) - 2)
    return beta[1], math.sqrt(sigma2 * np.linalg.inv(X.T @ X)[1, 1])


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("n", [3, 7, 20])
def test_slope_and_standard_error_match_the_normal_equations(seed, n):
    rng = np.random.default_rng(seed)
    xs = sorted(rng.choice(1000, size=n, replace=False).tolist())  # steps with gaps
    ys = (0.3 * np.array(xs) + rng.normal(0, 5, n)).tolist()
    slope, err = least_squares_slope(xs, ys)
    ref_slope, ref_err = reference_fit(xs, ys)
    assert slope == pytest.approx(ref_slope, rel=1e-9, abs=1e-12)
    assert err == pytest.approx(ref_err, rel=1e-7, abs=1e-12)


def first_divergence(proxy, gold, **kwargs):
    steps = list(range(1, len(proxy) + 1))
    for i in range(len(steps)):
        t = trend(steps[: i + 1], proxy[: i + 1], gold[: i + 1], **kwargs)
        if t is not None and t.diverging:
            return t
    return None


def test_gold_turning_down_while_the_proxy_rises_is_caught_after_the_turn():
    rng = np.random.default_rng(0)
    steps = np.arange(1, 61)
    proxy = 0.05 * steps + rng.normal(0, 0.02, 60)  # keeps rising
    gold = np.where(steps <= 30, 0.3 + 0.01 * steps, 0.6 - 0.01 * (steps - 30)) + rng.normal(0, 0.01, 60)  # peaks at 30
    found = first_divergence(proxy.tolist(), gold.tolist(), window=10, min_gold_drop=0.002, significance=2.0)
    assert found is not None and 30 < found.step <= 40  # after the peak, within one window of it
    assert found.proxy_slope > 0 and found.gold_slope < -0.002 and found.window == 10
    assert "rose" in found.message(0.002) and "fell" in found.message(0.002)


def test_no_alarm_when_both_rise_or_both_fall():
    steps = np.arange(1, 41)
    rising, falling = (0.02 * steps).tolist(), (1 - 0.02 * steps).tolist()
    assert first_divergence(rising, rising, window=10, min_gold_drop=0.002) is None  # a good proxy
    assert first_divergence(falling, falling, window=10, min_gold_drop=0.002) is None  # a collapse, not hacking
    assert first_divergence(falling, rising, window=10, min_gold_drop=0.002) is None


def test_noise_alone_raises_no_alarm_with_the_significance_test():
    rng = np.random.default_rng(1)
    proxy, gold = rng.normal(0, 0.1, 300).tolist(), rng.normal(0.5, 0.1, 300).tolist()  # flat, noisy (small batches)
    assert first_divergence(proxy, gold, window=20, min_gold_drop=0.002, significance=2.0) is None
    # without it the same scatter passes for a trend: that is what the test is for
    assert first_divergence(proxy, gold, window=20, min_gold_drop=0.002, significance=0.0) is not None


def test_thresholds_and_window():
    steps, proxy, gold = [1, 2, 3, 4], [0.0, 0.1, 0.2, 0.3], [0.5, 0.49, 0.48, 0.47]  # gold falls 0.01 per step
    assert trend(steps[:3], proxy[:3], gold[:3], window=4, min_gold_drop=0.0) is None  # the window is not full
    assert trend(steps, proxy, gold, window=4, min_gold_drop=0.005).diverging
    assert not trend(steps, proxy, gold, window=4, min_gold_drop=0.02).diverging  # falls, but not fast enough
    assert not trend(steps, proxy, gold, window=4, min_gold_drop=0.005, min_proxy_slope=0.2).diverging
    with pytest.raises(ValueError, match="window"):
        trend(steps, proxy, gold, window=2, min_gold_drop=0.0)


def test_monitor_skips_steps_without_a_gold_score_and_restores_its_history():
    monitor = RewardHackingMonitor(window=3, min_gold_drop=0.0)
    assert monitor.observe(1, 0.0, 0.9) is None
    assert monitor.observe(2, 0.5, math.nan) is None  # nothing verifiable: not a point of the fit
    assert monitor.observe(3, 1.0, 0.8) is None
    t = monitor.observe(4, 2.0, 0.7)
    assert monitor.steps == [1, 3, 4] and t is not None and t.diverging
    assert monitor.smoothed_gold() == pytest.approx(0.8)
    again = RewardHackingMonitor(window=3, min_gold_drop=0.0)
    again.load_state_dict(monitor.state_dict())
    assert again.observe(5, 3.0, 0.6).gold_slope == monitor.observe(5, 3.0, 0.6).gold_slope


def test_sqrt_kl_of_sequence_kls():
    assert sqrt_kl(torch.tensor([1.0, 3.0])) == pytest.approx(math.sqrt(2.0))
    assert sqrt_kl(torch.tensor([-0.5, 0.1])) == 0.0  # an estimate below 0 counts as 0
    assert sqrt_kl(torch.tensor([])) == 0.0


# --------------------------------------------------------------------------- the best-gold checkpoint


def make_checkpoints(run, steps):
    for s in steps:
        folder = run / "checkpoints" / f"step-{s}"
        folder.mkdir(parents=True)
        (folder / "COMPLETE").write_text("ok\n")


def test_best_gold_is_marked_and_survives_pruning(tmp_path):
    make_checkpoints(tmp_path, [2, 4])
    assert offer_best_gold(tmp_path, 2, 0.6, "held-out pass@1").step == 2
    assert offer_best_gold(tmp_path, 4, 0.6, "held-out pass@1").step == 2  # a tie keeps the less optimized one
    assert offer_best_gold(tmp_path, 4, math.nan, "held-out pass@1").step == 2
    make_checkpoints(tmp_path, [6, 8])
    assert offer_best_gold(tmp_path, 6, 0.4, "held-out pass@1").step == 2
    assert json.loads((tmp_path / "best_gold.json").read_text()) == {
        "step": 2, "score": 0.6, "source": "held-out pass@1", "checkpoint": "checkpoints/step-2"}
    deleted = prune_checkpoints(tmp_path, keep=1, protect=[read_best_gold(tmp_path).step])
    assert deleted == [4, 6]
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step-2", "step-8"]
    assert offer_best_gold(tmp_path, 8, 0.9, "held-out pass@1").step == 8
    assert prune_checkpoints(tmp_path, keep=1, protect=[8]) == [2]


# --------------------------------------------------------------------------- a PPO run the monitor stops


@pytest.mark.slow
def test_a_reward_model_that_pays_for_what_the_verifier_forbids_is_stopped(tiny_model_dir, tmp_path):
    """The reward model scores 1 for a completion that ends in a digit; the verifier counts a completion
    correct only without digits. PPO learns digits: the proxy rises, the gold falls, the monitor stops it."""
    rm = build_reward_model(tmp_path / "rm", tiny_model_dir, kind="digits")
    run = tmp_path / "run"
    cfg = load_config(PPOConfig, None, [
        f"output_dir={run}", f"model.path={tiny_model_dir}", f"reward.reward_model.path={rm}",
        "verifier=ppo_support:no_digits", "rollout.engine=hf", "rollout.max_new_tokens=8",
        "algo.prompts_per_step=16", "algo.mini_batch_size=8", "algo.ppo_epochs=2", "algo.kl_coef=0",
        "optim.lr=1e-2", "critic.optim.lr=1e-3", "monitor.action=stop", "monitor.window=8", "monitor.min_gold_drop=0.01",
        "steps=40", "save_every=4", "keep_checkpoints=1", "threads=1"])
    with pytest.raises(RunStopped) as stopped:
        train_ppo(cfg, show_progress=False)
    assert stopped.value.exit_code == 5
    assert "stopped by the reward-hacking monitor" in str(stopped.value) and "over-optimizing" in str(stopped.value)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    last = rows[-1]
    assert last["step"] < 40 and last["monitor/diverging"] == 1.0
    assert last["monitor/proxy_slope"] > 0 and last["monitor/gold_slope"] < -0.01
    def mean(key, part):
        return sum(r[key] for r in part) / len(part)

    assert mean("monitor/proxy", rows[-3:]) > mean("monitor/proxy", rows[:3])
    assert mean("monitor/gold", rows[-3:]) < mean("monitor/gold", rows[:3]) - 0.3
    assert all(r["monitor/sqrt_kl"] >= 0 for r in rows) and last["monitor/sqrt_kl"] > rows[1]["monitor/sqrt_kl"]
    # the best-gold checkpoint is marked, earlier than the stop, and kept beside the newest (keep_checkpoints=1)
    best = read_best_gold(run)
    assert best is not None and best.step < last["step"] and best.source.startswith("training accuracy")
    kept = sorted(int(p.name.split("-")[1]) for p in (run / "checkpoints").glob("step-*"))
    assert kept == sorted({best.step, last["step"]})
    assert (run / "plots" / "overoptimization.png").read_bytes()[:4] == b"\x89PNG"
