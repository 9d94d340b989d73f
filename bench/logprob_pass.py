"""Time the training log-prob pass (forward and backward) three ways, in one process.

    python bench/logprob_pass.py --model DIR --task grpo/configs/demo_real_task.yaml

A GRPO batch has G samples of each prompt, of different lengths. ``plain`` runs every row's prompt
and pads every completion to the micro-batch's longest; ``shared`` (``model.share_prompts``) runs each
distinct prompt of a micro-batch once and its samples on its KV cache; ``trimmed`` (the default) also
groups the rows by completion length so that each group runs only as wide as its longest completion.
This script takes ``--prompts`` prompts of the task, as the trainer encodes them, gives each of
``--group-size`` samples a random completion of a random length between ``--min-completion-tokens``
and ``--completion-tokens`` (the pass costs the same whatever the tokens are), and times one optimizer
step's worth of micro-batches (``--micro-batch`` rows each: forward, backward of a weighted log-prob
sum), the three ways in turn, ``--reps`` times. It prints the median seconds of each, the gradients'
agreement with the plain way, and, as the last line, ``ratio_trimmed_over_plain: X``.

    --dtype bfloat16    the policy in bf16
    --lora              LoRA r=16 on q/k/v/o projections (the base weights frozen)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from grpo.config import LoraConfig, ModelConfig, TrainConfig, load_config  # noqa: E402
from grpo.logprobs import completion_logprobs, pack  # noqa: E402
from grpo.models import load_policy, setup_cpu  # noqa: E402
from grpo.trainer import prepare_task  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="local model folder")
    p.add_argument("--task", default="arithmetic")
    p.add_argument("--prompts", type=int, default=8)
    p.add_argument("--group-size", type=int, default=8)
    p.add_argument("--completion-tokens", type=int, default=64, help="the longest completion")
    p.add_argument("--min-completion-tokens", type=int, default=16, help="the shortest completion")
    p.add_argument("--micro-batch", type=int, default=16, help="rows per forward/backward")
    p.add_argument("--reps", type=int, default=2, help="timed repetitions of each way, alternating")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    p.add_argument("--lora", action="store_true")
    args = p.parse_args()
    setup_cpu(args.threads)

    cfg = load_config(TrainConfig, None, [f"model.path={args.model}", f"task={args.task}"])
    task, _, _, train_rows, _ = prepare_task(cfg)
    model_cfg = ModelConfig(path=args.model, dtype=args.dtype, lora=LoraConfig() if args.lora else None)
    model, tokenizer = load_policy(model_cfg)
    model.train()
    prompts = [task.encode(row, tokenizer) for row in train_rows[: args.prompts]]
    g = torch.Generator().manual_seed(0)
    vocab = model.get_input_embeddings().weight.shape[0]
    rows_p = [pr for pr in prompts for _ in range(args.group_size)]
    lengths = torch.randint(args.min_completion_tokens, args.completion_tokens + 1, (len(rows_p),), generator=g)
    rows_c = [torch.randint(10, vocab, (int(n),), generator=g).tolist() for n in lengths]
    micro = [pack(rows_p[s : s + args.micro_batch], rows_c[s : s + args.micro_batch], tokenizer.pad_token_id)
             for s in range(0, len(rows_p), args.micro_batch)]

    ways = {"plain": dict(share_prompts=False, trim_padding=False), "shared": dict(share_prompts=True, trim_padding=False),
            "trimmed": dict(share_prompts=True, trim_padding=True)}

    def one_step(way: str) -> tuple[float, dict[str, torch.Tensor]]:
        model.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        for mb in micro:
            logprobs, _ = completion_logprobs(model, mb, 1.0, with_entropy=True, **ways[way])
            weights = torch.linspace(-1, 1, logprobs.numel()).view_as(logprobs)
            (logprobs * weights * mb.completion_mask).sum().backward()
        seconds = time.perf_counter() - t0
        return seconds, {n: q.grad.float().clone() for n, q in model.named_parameters() if q.grad is not None}

    times: dict[str, list[float]] = {way: [] for way in ways}
    grads: dict[str, dict[str, torch.Tensor]] = {}
    one_step("trimmed")  # warm-up (allocator, first-call overheads)
    for _ in range(args.reps):
        for way in ways:
            seconds, grads[way] = one_step(way)
            times[way].append(seconds)
    prompt_tokens = sum(len(pr) for pr in prompts) / len(prompts)
    print(f"model: {args.model} ({args.dtype}, {'LoRA' if args.lora else 'full'}); {args.prompts} prompts x "
          f"{args.group_size} samples, {prompt_tokens:.0f} prompt tokens (mean), completions of "
          f"{float(lengths.float().mean()):.1f} tokens (mean, {args.min_completion_tokens}-{args.completion_tokens}), "
          f"micro-batch {args.micro_batch}")
    median = {way: statistics.median(times[way]) for way in ways}
    for way in ways:
        agreement = ""
        if way != "plain":
            num = sum((grads[way][n] - grads["plain"][n]).norm() ** 2 for n in grads["plain"]) ** 0.5
            den = sum(grads["plain"][n].norm() ** 2 for n in grads["plain"]) ** 0.5
            agreement = f"; gradient relative difference to plain {float(num / den):.2e}"
        print(f"{way + ':':<8} {median[way]:.3f} s per step ({', '.join(f'{t:.3f}' for t in times[way])}){agreement}")
    print(f"ratio_shared_over_plain: {median['shared'] / median['plain']:.3f}")
    print(f"ratio_trimmed_over_plain: {median['trimmed'] / median['plain']:.3f}")


if __name__ == "__main__":
    main()
