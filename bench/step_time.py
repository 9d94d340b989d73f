"""Time GRPO steps of the real training loop on a local model, phase by phase.

    python bench/step_time.py --model DIR --prompts 8 --group-size 8 --max-new-tokens 64 --steps 5

Prints the generate / verify / update / sync split of every step (the update split again into the
reference policy's log-probs, the policy's forward passes, backward and optimizer), the completion
tokens sampled per step (mean), the peak resident memory, the sampler-trainer
log-prob gap, and, as the last line, ``median_step_seconds: X``. Build a tiny
model to time with ``rlvr tiny-model --output DIR`` (a random-init model samples
the full ``--max-new-tokens`` every time, so every step does the same work), or
use SmolLM2-135M-Instruct (``rlvr convert --smollm2 --output DIR``).

    --dtype bfloat16             train (and sample) in bf16
    --set model.compute_dtype=float32   no mixed precision (auto: bf16 compute for models of >= 30M parameters)
    --lora                       LoRA r=16 on q/k/v/o projections instead of full fine-tuning
    --gradient-checkpointing     recompute activations in the backward pass

The peak RSS is the whole process's since it started (model loading and the
rollout engine included), so run one configuration per process.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from grpo.config import TrainConfig, load_config  # noqa: E402
from grpo.trainer import train  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="local model folder")
    p.add_argument("--prompts", type=int, default=8, help="prompts per step")
    p.add_argument("--group-size", type=int, default=8, help="samples per prompt")
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--task", default="arithmetic")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    p.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32", help="model.dtype")
    p.add_argument("--lora", action="store_true", help="LoRA (r=16, alpha=32, q/k/v/o projections)")
    p.add_argument("--gradient-checkpointing", action="store_true", help="model.gradient_checkpointing=true")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="any other training config override")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(TrainConfig, None, [
            f"model.path={args.model}", f"task={args.task}", f"steps={args.steps}",
            f"algo.prompts_per_step={args.prompts}", f"algo.group_size={args.group_size}",
            f"rollout.max_new_tokens={args.max_new_tokens}", f"threads={args.threads}",
            f"save_every={args.steps + 1}", f"output_dir={tmp}/run", f"model.dtype={args.dtype}",
            f"model.gradient_checkpointing={str(args.gradient_checkpointing).lower()}",
            *(["model.lora={}"] if args.lora else []), *args.overrides,
        ])
        train(cfg, show_progress=False)
        rows = [json.loads(line) for line in (Path(tmp) / "run" / "metrics.jsonl").read_text().splitlines()]
    parts = ("reference", "logprobs", "backward", "optimizer")
    print(f"{'step':>4} {'generate':>9} {'verify':>8} {'update':>8} "
          + " ".join(f"{k:>9}" for k in parts)
          + f" {'sync':>7} {'total':>8} {'tokens':>7} {'logprob_diff':>12}")
    tokens = [r["completion/length_mean"] * args.prompts * args.group_size for r in rows]
    for r, t in zip(rows, tokens):
        print(f"{r['step']:>4} {r['time/generate']:9.3f} {r['time/verify']:8.4f} {r['time/update']:8.3f} "
              + " ".join(f"{r.get(f'time/{k}', 0.0):9.3f}" for k in parts)
              + f" {r['time/sync']:7.3f} {r['time/step']:8.3f} {t:7.0f} {r.get('rollout/logprob_diff', 0.0):12.2e}")
    print(f"model: {cfg.model.path} ({cfg.model.dtype}, compute_dtype {cfg.model.compute_dtype}, "
          f"{'LoRA' if cfg.model.lora else 'full'}"
          f"{', gradient checkpointing' if cfg.model.gradient_checkpointing else ''})")
    print(f"mean_completion_tokens_per_step: {statistics.mean(tokens):.0f}")
    print(f"peak_rss_gb: {max(r['memory/peak_rss_gb'] for r in rows):.2f}")
    print(f"median_update_seconds: {statistics.median(r['time/update'] for r in rows):.3f}")
    print(f"median_step_seconds: {statistics.median(r['time/step'] for r in rows):.3f}")


if __name__ == "__main__":
    main()
