"""What a training run says on the console: a start banner, evaluations as they happen, one line
every few steps when there is no progress bar, and where everything is at the end."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Mapping, TextIO

LOG_EVERY_STEPS = 10  # without a progress bar: one line per this many steps (and the first and last)


def precision_label(param_dtype: str, compute_dtype: Any) -> str:
    """``float32``, or ``float32 weights, bfloat16 compute`` under mixed precision (``compute_dtype``: a
    torch dtype or its name, None for none)."""
    if compute_dtype is None:
        return param_dtype
    return f"{param_dtype} weights, {str(compute_dtype).removeprefix('torch.')} compute"


def engine_label(engine: Any) -> str:
    """``hf``, ``vllm (colocated)`` or ``vllm server at URL``."""
    name = type(engine).__name__
    if name == "HFEngine":
        return "hf"
    if name == "VLLMServerEngine":
        return f"vllm server at {engine.url}"
    if name == "VLLMEngine":
        return "vllm (colocated)"
    return name


class Console:
    def __init__(self, progress_bar: bool, out: TextIO | None = None):
        self.progress_bar = progress_bar
        self.out = out or sys.stderr

    def _print(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def banner(self, cfg: Any, task: Any, engine: str, train_rows: int, heldout: int, start_step: int,
               checkpoint: Path | None, compute_dtype: Any = None) -> None:
        algo = cfg.algo
        lines = [
            f"rlvr train: {cfg.output_dir}",
            f"  model     {cfg.model.path} ({precision_label(cfg.model.dtype, compute_dtype)})"
            + (f", resumed from step {start_step} ({checkpoint})" if checkpoint is not None else ""),
            f"  task      {task.name}: {train_rows} training problems"
            + (f", {heldout} held-out ({cfg.eval.split}) evaluated" if heldout else ", no held-out evaluation"),
            f"  batch     {algo.prompts_per_step} prompts x {algo.group_size} samples, "
            f"<= {cfg.rollout.max_new_tokens} new tokens, {cfg.steps} steps, engine {engine}",
        ]
        self._print("\n".join(lines))

    def evaluation(self, step: int, metrics: Mapping[str, float]) -> None:
        keys = sorted(k for k in metrics if k.startswith("eval/pass@") and "_ci_" not in k)
        parts = []
        for key in keys:
            low, high = metrics.get(f"{key}_ci_low"), metrics.get(f"{key}_ci_high")
            band = f" [{low:.3f}, {high:.3f}]" if low is not None and high is not None else ""
            parts.append(f"{key.removeprefix('eval/')} {metrics[key]:.3f}{band}")
        self._print(f"\nstep {step}: held-out " + ", ".join(parts))

    def step(self, step: int, steps: int, metrics: Mapping[str, float]) -> None:
        if self.progress_bar or not (step == 1 or step == steps or step % LOG_EVERY_STEPS == 0):
            return
        self._print(f"step {step}/{steps}: reward {metrics['reward/mean']:.3f}, accuracy "
                    f"{metrics['reward/accuracy']:.3f}, length {metrics['completion/length_mean']:.1f}, "
                    f"{metrics['time/step']:.1f} s")

    def summary(self, run_dir: Path, checkpoint: Path | None) -> None:
        self._print(f"done: run folder {run_dir}; newest checkpoint {checkpoint}; plots in {run_dir / 'plots'}; "
                    f"metrics in {run_dir / 'metrics.jsonl'}")
