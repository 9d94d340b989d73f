"""``rlvr eval``: pass@k (and maj@k) of a model on a task's held-out problems, with reports.

Samples ``n`` completions per problem, judges them with the task's verifier, and writes
into the output folder:

* ``per_problem.jsonl``: per problem its id, prompt, gold answer (when the task has one),
  c of n, pass@k, maj@k, and every completion with its verdict;
* ``summary.json``: the model, task, sampling settings and every metric with its 95% interval;
* ``report.md``: the same as a Markdown table (also printed).

``--model`` takes a Hugging Face model folder, a run folder (its newest complete
checkpoint), a checkpoint folder, or a hub id.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence, TextIO

from grpo.config import ConfigError, ModelConfig, RolloutConfig, field_docs
from grpo.engines.base import SamplingParams

DEFAULT_N = 16


def parse_ks(text: str | None, n: int) -> tuple[int, ...]:
    """``"1,4,16"`` -> (1, 4, 16); None -> 1, 4, 16, 64, ... up to n, and n itself."""
    if text is None:
        ks = {1, n}
        k = 4
        while k < n:
            ks.add(k)
            k *= 4
        return tuple(sorted(ks))
    try:
        ks = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError as exc:
        raise ConfigError(f"--k {text!r}: give comma-separated integers, e.g. --k 1,4,16") from exc
    if not ks or any(not 1 <= k <= n for k in ks):
        raise ConfigError(f"--k {text!r}: each k must be in [1, n={n}]; raise --n or lower k")
    return tuple(ks)


def default_output_dir(model: str, model_path: str, task_name: str, split: str) -> Path:
    """``RUN/eval/step-N-TASK-SPLIT`` for a checkpoint of a run, else ``runs/eval/MODEL-TASK-SPLIT``."""
    label = f"{task_name}-{split}"
    resolved = Path(model_path)
    if resolved.is_dir() and resolved.parent.name == "checkpoints":
        return resolved.parent.parent / "eval" / f"{resolved.name}-{label}"
    name = Path(model).resolve().name if Path(model).is_dir() else model.replace("/", "--")
    return Path("runs") / "eval" / f"{name}-{label}"


# what `rlvr eval` samples with unless told otherwise: the SamplingParams defaults, longer completions
EVAL_SAMPLING = SamplingParams(max_new_tokens=512)


def add_sampling_arguments(p: argparse.ArgumentParser, defaults: SamplingParams) -> None:
    """One flag per field of ``SamplingParams`` (``--top-p`` for ``top_p``), documented from the field docs."""
    docs = field_docs(SamplingParams)
    for f in dataclasses.fields(SamplingParams):
        flag = "--" + f.name.replace("_", "-")
        default = getattr(defaults, f.name)
        if f.name == "stop":  # a list: one flag per string
            p.add_argument(flag, action="append", metavar="STRING", default=None,
                           help=f"{docs[f.name]}; repeatable (default: the task's own, e.g. HumanEval's)")
        else:
            p.add_argument(flag, type=type(default), default=default, help=f"{docs[f.name]} (default {default})")


def sampling_from_args(args: argparse.Namespace, task_stop: Sequence[str]) -> SamplingParams:
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(SamplingParams)}
    values["stop"] = tuple(values["stop"]) if values["stop"] is not None else tuple(task_stop)
    return SamplingParams(**values)


def add_eval_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, metavar="PATH_OR_HUB_ID",
                   help="a model folder, a run folder (its newest complete checkpoint), a checkpoint folder, "
                        "or a hub id")
    p.add_argument("--task", required=True, metavar="NAME_OR_YAML",
                   help="a built-in task (arithmetic, countdown, gsm8k, math500, math, mbpp, humaneval) "
                        "or a task YAML file")
    p.add_argument("--n", type=int, default=DEFAULT_N, help=f"samples per problem (default {DEFAULT_N})")
    p.add_argument("--k", metavar="K1,K2,...",
                   help="report pass@k / maj@k for these k (default: 1, 4, 16, ... up to n)")
    p.add_argument("--split", default="test", help="the task's split to evaluate (default: test)")
    p.add_argument("--limit", type=int, metavar="N", help="evaluate only the first N problems of the split")
    p.add_argument("--output", metavar="DIR", help="report folder (default: RUN/eval/step-N-TASK-SPLIT for a run's "
                                                   "checkpoint, else runs/eval/MODEL-TASK-SPLIT)")
    add_sampling_arguments(p, EVAL_SAMPLING)
    p.add_argument("--chat-template", dest="chat_template", action="store_true", default=None,
                   help="render prompts with the tokenizer's chat template (default: as the task says)")
    p.add_argument("--no-chat-template", dest="chat_template", action="store_false", help="plain prompts")
    p.add_argument("--verifier", help="judge with this verifier instead of the task's (name or module:function)")
    p.add_argument("--timeout", type=float, metavar="SECONDS", help="per-sample deadline of sandboxed verifiers")
    p.add_argument("--seed", type=int, default=0, help="sampling and bootstrap seed (default 0)")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the 95%% intervals (0 = none)")
    p.add_argument("--engine", choices=["auto", "hf", "vllm"], default="auto",
                   help="rollout engine, as rollout.engine in training (default auto: vllm where installed for "
                        "models of >= 30M parameters, else hf)")
    p.add_argument("--batch-size", type=int, default=64, help="sequences generated at once by the hf engine")
    p.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32")
    p.add_argument("--compute-dtype", choices=["auto", "float32", "bfloat16"], default="auto",
                   help="as model.compute_dtype in training (default auto: bfloat16 matrix products over float32 "
                        "weights for models of >= 30M parameters on hardware with native bfloat16)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run_eval(model: str, task_name: str, *, n: int = DEFAULT_N, ks: str | None = None, split: str = "test",
             limit: int | None = None, output: str | None = None, sampling: SamplingParams | None = None,
             chat_template: bool | None = None, verifier: str | None = None, timeout_s: float | None = None,
             seed: int = 0, bootstrap: int = 1000, engine: str = "auto", batch_size: int = 64,
             dtype: str = "float32", compute_dtype: str = "auto", threads: int = 0, show_progress: bool = True,
             log: TextIO | None = None) -> dict[str, Any]:
    """Evaluate ``model`` on ``task_name``; writes the reports and returns the summary document."""
    log = log if log is not None else sys.stderr  # read at call time: a captured stderr may have been swapped since import
    from tasks import get_task
    from verifiers import get_verifier

    if n < 1:
        raise ConfigError(f"--n {n}: must be >= 1")
    if compute_dtype == "bfloat16" and dtype != "float32":
        raise ConfigError(f"--compute-dtype bfloat16 mixes precision over float32 weights, but --dtype {dtype} "
                          "already computes in it: drop --compute-dtype, or use --dtype float32")
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit {limit}: must be >= 1")
    k_values = parse_ks(ks, n)

    # 1. the task and its problems (before the model: a missing dataset fails fast)
    task = get_task(task_name)
    if chat_template is not None:
        task = dataclasses.replace(task, use_chat_template=chat_template)
    rows = task.rows(split, limit)
    if not rows:
        raise ConfigError(f"task {task.name!r} split {split!r} has no problems")
    verifier_name = verifier or task.verifier
    try:
        judge = get_verifier(verifier_name)
    except ValueError as exc:
        raise ConfigError(f"task {task.name!r}: {exc}") from exc
    from grpo.trainer import check_rows_for

    check_rows_for(judge, task, rows[0], split)

    # 2. the model and the engine
    import torch
    from tqdm import tqdm

    from grpo.engines.factory import build_engine, engine_name
    from grpo.eval import evaluate, summary_dict, write_reports
    from grpo.models import load_tokenizer, quiet_transformers, resolve_model_path, setup_cpu

    sampling = sampling or dataclasses.replace(EVAL_SAMPLING, stop=task.stop)
    quiet_transformers()
    setup_cpu(threads)
    model_path = resolve_model_path(model)
    out_dir = Path(output) if output else default_output_dir(model, model_path, task.name, split)
    print(f"rlvr eval: {task.name} ({split}), {len(rows)} problems x {n} samples; model {model_path}", file=log)
    t0 = time.perf_counter()
    model_cfg = ModelConfig(path=model_path, dtype=dtype, compute_dtype=compute_dtype)
    tokenizer = load_tokenizer(model_cfg)
    # evaluation owns the machine: vLLM takes most of the GPU and never sleeps
    rollout = RolloutConfig(engine=engine, batch_size=batch_size, gpu_memory_utilization=0.85, vllm_sleep_level=0)
    engine = engine_name(rollout, model_cfg)
    sampler = build_engine(rollout, model_cfg, tokenizer, seed=seed)
    prompts = [task.prompt(r, tokenizer) for r in rows]
    prompt_ids = [task.encode(r, tokenizer) for r in rows]
    t_load = time.perf_counter() - t0

    # 3. sample, verify, score
    torch.manual_seed(seed)
    bar = tqdm(total=len(rows), desc="eval", unit="problem", disable=not show_progress, file=log, dynamic_ncols=True)
    t0 = time.perf_counter()
    result = evaluate(sampler, prompt_ids, rows, judge, n=n, ks=k_values, sampling=sampling, timeout_s=timeout_s,
                      bootstrap=bootstrap, seed=seed,
                      problems_per_chunk=max(1, batch_size // n) if engine == "hf" else 64,
                      progress=lambda done: bar.update(done - bar.n))
    bar.close()
    t_eval = time.perf_counter() - t0
    sampler.close()

    # 4. reports
    meta = {
        "model": model,
        "model_path": model_path,
        "task": task.name,
        "task_source": task.source,
        "split": split,
        "limit": limit,
        "verifier": verifier_name,
        "use_chat_template": task.use_chat_template,
        "engine": engine,
        "sampling": {**dataclasses.asdict(sampling), "stop": list(sampling.stop)},
        "ks": list(k_values),
        "seed": seed,
        "bootstrap": bootstrap,
        "seconds": {"load": round(t_load, 2), "sample_and_verify": round(t_eval, 2)},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    problem_fields = []
    for i, (row, prompt) in enumerate(zip(rows, prompts)):
        fields: dict[str, Any] = {"id": task.problem_id(row, i), "prompt": prompt}
        if "answer" in row:
            fields["answer"] = row["answer"]
        problem_fields.append(fields)
    paths = write_reports(result, out_dir, meta, problem_fields)
    print(paths["report"].read_text(), end="")
    print(f"reports: {out_dir}/ (per_problem.jsonl, summary.json, report.md)", file=log)
    return summary_dict(result, meta)


def run_from_args(args: argparse.Namespace) -> None:
    from tasks import get_task

    sampling = sampling_from_args(args, get_task(args.task).stop)
    run_eval(args.model, args.task, n=args.n, ks=args.k, split=args.split, limit=args.limit, output=args.output,
             sampling=sampling, chat_template=args.chat_template, verifier=args.verifier, timeout_s=args.timeout,
             seed=args.seed, bootstrap=args.bootstrap, engine=args.engine, batch_size=args.batch_size,
             dtype=args.dtype, compute_dtype=args.compute_dtype, threads=args.threads,
             show_progress=not args.no_progress)
