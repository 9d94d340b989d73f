"""Rollout throughput: generated tokens per second of the HF and vLLM engines on the same prompts.

    python bench/rollout_throughput.py --model DIR --prompts 16 --group-size 8 --max-new-tokens 64 --threads 2

Each engine samples ``--group-size`` completions for each of ``--prompts`` task
prompts (the trainer's shape of one step), once to warm up and then
``--repeats`` times; the figure is generated tokens (EOS included) over wall
time, median and best over the repeats (on a shared machine the best is the
steadier figure), and the last line is ``vllm_over_hf: X`` from the medians. Build
a model with ``rlvr tiny-model --output DIR``; a random-init model rarely emits
EOS, so both engines do about ``prompts * group_size * max_new_tokens`` tokens.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def measure(engine, prompt_ids, group_size: int, sampling, repeats: int) -> tuple[float, float, float]:
    """(median tokens/s, best tokens/s, median seconds per generate call)."""
    import torch

    torch.manual_seed(0)
    engine.generate(prompt_ids, group_size, sampling)  # warm-up
    rates, seconds = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = engine.generate(prompt_ids, group_size, sampling)
        dt = time.perf_counter() - t0
        rates.append(sum(len(ids) for ids in out.token_ids) / dt)
        seconds.append(dt)
    return statistics.median(rates), max(rates), statistics.median(seconds)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="local model folder, or a run folder (its newest checkpoint)")
    p.add_argument("--task", default="arithmetic")
    p.add_argument("--prompts", type=int, default=16)
    p.add_argument("--group-size", type=int, default=8)
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    p.add_argument("--engines", default="hf,vllm", help="comma-separated: hf, vllm")
    args = p.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from grpo.engines.hf import HFEngine
    from grpo.models import quiet_transformers, resolve_model_path, setup_cpu
    from grpo.engines.base import SamplingParams
    from tasks import get_task

    quiet_transformers()
    setup_cpu(args.threads)
    args.model = resolve_model_path(args.model)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    task = get_task(args.task)
    prompt_ids = [tokenizer(task.prompt(row)).input_ids for row in task.load("test")[: args.prompts]]
    sampling = SamplingParams(temperature=1.0, max_new_tokens=args.max_new_tokens)
    shape = f"{args.prompts} prompts x {args.group_size} samples x <= {args.max_new_tokens} tokens"
    print(f"model {args.model}, {shape}, torch threads {torch.get_num_threads()}")
    results = {}
    for name in args.engines.split(","):
        if name == "hf":
            engine = HFEngine(AutoModelForCausalLM.from_pretrained(args.model).eval(), tokenizer, batch_size=512)
        elif name == "vllm":
            from grpo.engines.vllm import VLLMEngine

            t0 = time.perf_counter()
            engine = VLLMEngine(args.model, tokenizer, cpu_kv_cache_gb=1.0)
            print(f"vllm engine start: {time.perf_counter() - t0:.1f} s")
        else:
            raise SystemExit(f"unknown engine {name!r}; valid: hf, vllm")
        rate, best, seconds = measure(engine, prompt_ids, args.group_size, sampling, args.repeats)
        results[name] = rate
        print(f"{name}: {rate:.0f} tokens/s median, {best:.0f} best ({seconds:.2f} s per generate call)", flush=True)
        if hasattr(engine, "close"):
            engine.close()
    if "hf" in results and "vllm" in results:
        print(f"vllm_over_hf: {results['vllm'] / results['hf']:.2f}")


if __name__ == "__main__":
    main()
