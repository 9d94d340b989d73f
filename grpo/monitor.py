"""The reward-hacking monitor of PPO: the proxy reward against the gold score against sqrt(KL).

When the reward comes from a learned reward model and the task has a verifier, each step's samples
get two scores: the **proxy** (the reward model's normalized score, what PPO optimizes) and the
**gold** (the verifier's correctness, what we want). Gao et al. 2022, "Scaling laws for reward model
overoptimization" (arXiv:2210.10760), draw both against ``d = sqrt(KL(pi || pi_ref))``: as the policy
moves away from the reference, gold first rises with the proxy, then falls while the proxy keeps
rising. That turn is what this module detects.

The rule (:func:`trend`, pure): take the last ``window`` steps that have a gold score; fit a
least-squares line to the proxy and one to the gold, each against the step number; the run is
**diverging** when ``proxy_slope > min_proxy_slope`` and ``gold_slope < -min_gold_drop`` (both per
step), and each slope is at least ``significance`` standard errors from 0. A line over a window,
not a step-to-step difference, so one noisy batch neither triggers nor hides it; the standard-error
test keeps the scatter of small batches from passing for a trend. The units are the metrics' own:
proxy in reward-model standard deviations, gold in accuracy (a ``min_gold_drop`` of 0.002 over a
window of 20 is a fitted fall of 0.04 in accuracy).

It also keeps the checkpoint with the best gold score: ``best_gold.json`` in the run folder names its
step and score, and :func:`prune_checkpoints` never deletes it.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Collection, Sequence

import torch

BEST_GOLD_FILE = "best_gold.json"


# --------------------------------------------------------------------------- the rule (pure)


def least_squares_slope(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float]:
    """Slope of the least-squares line through ``(xs, ys)`` and its standard error.

    ``slope = sum((x - mean_x) * (y - mean_y)) / sum((x - mean_x)^2)``; the standard error is
    ``sqrt(sum(residual^2) / (n - 2) / sum((x - mean_x)^2))`` (NaN for fewer than 3 points). A slope
    of 0.0 (standard error NaN) when the xs do not vary.
    """
    if len(xs) != len(ys):
        raise ValueError(f"xs and ys differ in length: {len(xs)} and {len(ys)}")
    n = len(xs)
    if n < 2:
        return 0.0, math.nan
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return 0.0, math.nan
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    if n < 3:
        return slope, math.nan
    residuals = sum((y - (my + slope * (x - mx))) ** 2 for x, y in zip(xs, ys))
    return slope, math.sqrt(residuals / (n - 2) / sxx)


@dataclass(frozen=True)
class Trend:
    """Least-squares trends of proxy and gold over the last ``window`` observed steps."""

    step: int  # the newest step of the window
    window: int
    proxy_slope: float  # per step
    gold_slope: float  # per step
    proxy_stderr: float  # standard errors of the slopes
    gold_stderr: float
    diverging: bool  # proxy rising while gold falls (see the module doc)

    def message(self, min_gold_drop: float) -> str:
        return (f"step {self.step}: over the last {self.window} steps the proxy reward (reward-model score) rose "
                f"{self.proxy_slope:+.4f} per step while the gold score (verifier accuracy) fell "
                f"{self.gold_slope:+.4f} per step (monitor.min_gold_drop = {min_gold_drop}): the policy is "
                "over-optimizing the reward model")


def trend(steps: Sequence[int], proxy: Sequence[float], gold: Sequence[float], *, window: int,
          min_gold_drop: float, min_proxy_slope: float = 0.0, significance: float = 0.0) -> Trend | None:
    """The trend over the last ``window`` points, or None while fewer than ``window`` are known.

    Diverging: ``proxy_slope > min_proxy_slope`` and ``gold_slope < -min_gold_drop``, and each slope
    at least ``significance`` standard errors away from 0 (so the noise of small batches does not
    pass for a trend; 0 = no such test).

    Args:
        steps: (N,) step numbers, increasing (steps without a gold score are simply absent).
        proxy: (N,) mean proxy reward of each step's samples.
        gold: (N,) mean gold score of the same samples.
        window: >= 3 points in the fit.
        min_gold_drop: >= 0, in gold units per step.
        min_proxy_slope: in proxy units per step.
        significance: >= 0, in standard errors.
    """
    if window < 3:
        raise ValueError(f"window must be >= 3 points, got {window}")
    if not len(steps) == len(proxy) == len(gold):
        raise ValueError(f"steps, proxy and gold differ in length: {len(steps)}, {len(proxy)}, {len(gold)}")
    if len(steps) < window:
        return None
    xs = [float(s) for s in steps[-window:]]
    p_slope, p_err = least_squares_slope(xs, list(proxy[-window:]))
    g_slope, g_err = least_squares_slope(xs, list(gold[-window:]))
    # a perfectly straight line has standard error 0: any slope beyond the thresholds is significant
    diverging = (p_slope > min_proxy_slope and g_slope < -min_gold_drop
                 and p_slope >= significance * p_err and -g_slope >= significance * g_err)
    return Trend(step=int(steps[-1]), window=window, proxy_slope=p_slope, gold_slope=g_slope, proxy_stderr=p_err,
                 gold_stderr=g_err, diverging=diverging)


def sqrt_kl(sequence_kl: torch.Tensor) -> float:
    """``sqrt(mean_b KL_b)`` with ``KL_b`` the sequence-level KL (per-token KL summed over a sample's tokens),
    the x-axis of Gao et al. An estimate below 0 (k1 of a small KL can be) counts as 0.

    Args:
        sequence_kl: (B,) per-sample KL summed over its tokens.
    """
    if sequence_kl.numel() == 0:
        return 0.0
    return math.sqrt(max(0.0, float(sequence_kl.float().mean())))


# --------------------------------------------------------------------------- the monitor


@dataclass
class RewardHackingMonitor:
    """Proxy and gold of every step; the trend over the last ``window`` of them."""

    window: int
    min_gold_drop: float
    min_proxy_slope: float = 0.0
    significance: float = 0.0
    steps: list[int] = field(default_factory=list)
    proxy: list[float] = field(default_factory=list)
    gold: list[float] = field(default_factory=list)

    def observe(self, step: int, proxy: float, gold: float) -> Trend | None:
        """Record a step; a step whose gold is unknown (NaN: nothing verifiable) is skipped."""
        if math.isfinite(proxy) and math.isfinite(gold):
            self.steps.append(step)
            self.proxy.append(proxy)
            self.gold.append(gold)
        return trend(self.steps, self.proxy, self.gold, window=self.window, min_gold_drop=self.min_gold_drop,
                     min_proxy_slope=self.min_proxy_slope, significance=self.significance)

    def smoothed_gold(self) -> float:
        """Mean gold over the last ``window`` observed steps (NaN before the first)."""
        recent = self.gold[-self.window:]
        return sum(recent) / len(recent) if recent else math.nan

    def state_dict(self) -> dict[str, Any]:
        return {"steps": list(self.steps), "proxy": list(self.proxy), "gold": list(self.gold)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps, self.proxy, self.gold = list(state["steps"]), list(state["proxy"]), list(state["gold"])


# --------------------------------------------------------------------------- the best-gold checkpoint


@dataclass(frozen=True)
class BestGold:
    """The checkpoint with the best gold score so far, as written to ``best_gold.json``."""

    step: int
    score: float
    source: str  # what the score is: held-out pass@1, or the smoothed training accuracy
    checkpoint: str  # relative to the run folder


def read_best_gold(run_dir: str | Path) -> BestGold | None:
    path = Path(run_dir) / BEST_GOLD_FILE
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    return BestGold(step=int(data["step"]), score=float(data["score"]), source=str(data["source"]),
                    checkpoint=str(data["checkpoint"]))


def offer_best_gold(run_dir: str | Path, step: int, score: float, source: str) -> BestGold | None:
    """Mark ``checkpoints/step-{step}`` as the best-gold checkpoint if ``score`` beats the one marked
    (ties keep the earlier, less optimized one). Returns the mark now in force (None: none yet)."""
    run = Path(run_dir)
    best = read_best_gold(run)
    if not math.isfinite(score) or (best is not None and score <= best.score):
        return best
    best = BestGold(step=step, score=float(score), source=source, checkpoint=f"checkpoints/step-{step}")
    tmp = run / f".{BEST_GOLD_FILE}.tmp"
    tmp.write_text(json.dumps(asdict(best), indent=2) + "\n")
    os.replace(tmp, run / BEST_GOLD_FILE)  # atomic: a reader sees the old mark or the new one
    return best


def prune_checkpoints(run_dir: str | Path, keep: int, protect: Collection[int] = ()) -> list[int]:
    """Delete complete ``checkpoints/step-N`` beyond the ``keep`` newest, except the steps in ``protect``.
    Returns the steps deleted."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    steps = sorted(int(m.group(1)) for p in root.iterdir()
                   if (m := re.fullmatch(r"step-(\d+)", p.name)) and (p / "COMPLETE").is_file())
    doomed = [s for s in steps[: max(0, len(steps) - keep)] if s not in set(protect)]
    for s in doomed:
        shutil.rmtree(root / f"step-{s}", ignore_errors=True)
    return doomed
