"""``rlvr pairs``: preference pairs from a policy's own samples, judged by the task's verifier.

For each prompt of a task split, sample ``group_size`` completions with the
rollout engine, judge them with the verifier, and pair a completion judged
correct (chosen) with one judged incorrect (rejected) of the same prompt
(``grpo.pairs.make_pairs``: seeded, completions spread over the pairs, optional
length matching; unverifiable samples are never used). Pairs are written as JSON
Lines in the prompt / chosen / rejected layout; ``meta`` keeps the task, split,
problem id, both verdicts and the sampled token ids (``prompt_ids``,
``chosen_ids``, ``rejected_ids``), which ``rlvr rm`` and ``rlvr dpo`` use
instead of re-encoding the text. ``heldout_split`` writes a second file from
prompts training never sees.

Prompts are plain text, or chat messages for tasks that use the chat template,
so that ``grpo.pairs.render_pair`` gives back the prompt ids the policy saw.
"""

from __future__ import annotations

import random
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from grpo.config import ConfigError, PairsConfig
from grpo.pairs import PreferencePair, make_pairs, write_pairs
from tasks import Task

CLI_FLAGS = {"task": "task", "model": "model.path", "output": "output", "split": "split",
             "heldout_split": "heldout_split", "heldout_output": "heldout_output"}


def heldout_path(cfg: PairsConfig) -> Path | None:
    """Where held-out pairs go: ``heldout_output``, else ``output`` with the split's name (pairs.test.jsonl)."""
    if cfg.heldout_split is None:
        return None
    if cfg.heldout_output is not None:
        return Path(cfg.heldout_output)
    out = Path(cfg.output)
    return out.with_name(f"{out.name.removesuffix('.jsonl')}.{cfg.heldout_split}.jsonl")


def _prompt_and_turns(task: Task, row: dict[str, Any], tokenizer, chosen: str, rejected: str):
    """(prompt, chosen, rejected) as text, or as chat messages for chat-template tasks."""
    if not task.use_chat_template:
        return task.prompt(row), chosen, rejected
    messages = ([{"role": "system", "content": task.system_prompt}] if task.system_prompt else [])
    messages.append({"role": "user", "content": task.user_message(row)})
    return messages, [{"role": "assistant", "content": chosen}], [{"role": "assistant", "content": rejected}]


def pairs_for_split(cfg: PairsConfig, task: Task, split: str, limit: int, engine, tokenizer, verifier,
                    show_progress: bool) -> tuple[list[PreferencePair], dict[str, Any]]:
    """Sample, judge and pair the prompts of one split; returns the pairs and counts."""
    from verifiers import verify_batch

    rows = task.rows(split, limit or None)
    if not rows:
        raise ConfigError(f"task {task.name!r} split {split!r} has no prompts")
    sampling = cfg.rollout.sampling()
    statuses: Counter[str] = Counter()
    pairs: list[PreferencePair] = []
    prompts_with_pairs = truncated = 0
    # a seed per split: adding a held-out split does not change the training pairs
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    bar = tqdm(total=len(rows), desc=f"pairs {split}", unit="prompt", disable=not show_progress, file=sys.stderr,
               dynamic_ncols=True)
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(random.Random(f"{cfg.seed}/{split}").getrandbits(63))
        for start in range(0, len(rows), cfg.chunk_prompts):
            chunk = rows[start : start + cfg.chunk_prompts]
            prompt_ids = [task.encode(r, tokenizer) for r in chunk]
            # 1. sample G completions per prompt
            completions = engine.generate(prompt_ids, cfg.group_size, sampling)
            # 2. judge them (told which were cut at max_new_tokens)
            sample_rows = [chunk[i] for i in completions.prompt_index]
            verdicts = verify_batch(verifier, completions.text, sample_rows, timeout_s=cfg.timeout_s,
                                    finish_reasons=completions.finish_reason)
            statuses.update(v.status for v in verdicts)
            truncated += completions.finish_reason.count("length")
            # 3. pair correct with incorrect completions of the same prompt
            groups: dict[int, list[int]] = {}
            for i, p in enumerate(completions.prompt_index):
                groups.setdefault(p, []).append(i)
            for local, row in enumerate(chunk):
                index = start + local
                group = groups.get(local, [])
                chosen_pairs = make_pairs([verdicts[i].status for i in group],
                                          [len(completions.token_ids[i]) for i in group],
                                          rng=random.Random(f"{cfg.seed}/{split}/{index}"),
                                          max_pairs_per_prompt=cfg.max_pairs_per_prompt,
                                          length_tolerance=cfg.length_tolerance)
                prompts_with_pairs += bool(chosen_pairs)
                for c, r in chosen_pairs:
                    ci, ri = group[c], group[r]
                    prompt, chosen, rejected = _prompt_and_turns(task, row, tokenizer, completions.text[ci],
                                                                 completions.text[ri])
                    meta = {
                        "task": task.name, "split": split, "problem_id": task.problem_id(row, index),
                        **({"answer": row["answer"]} if "answer" in row else {}),
                        "chosen_verdict": _verdict(verdicts[ci], completions.finish_reason[ci]),
                        "rejected_verdict": _verdict(verdicts[ri], completions.finish_reason[ri]),
                        "prompt_ids": list(prompt_ids[local]),
                        "chosen_ids": list(completions.token_ids[ci]),
                        "rejected_ids": list(completions.token_ids[ri]),
                    }
                    pairs.append(PreferencePair(prompt, chosen, rejected, meta=meta))
            bar.update(len(chunk))
    bar.close()
    counts = {"split": split, "prompts": len(rows), "samples": len(rows) * cfg.group_size,
              "statuses": dict(statuses), "truncated": truncated, "prompts_with_pairs": prompts_with_pairs,
              "pairs": len(pairs)}
    return pairs, counts


def _verdict(verdict, finish_reason: str) -> dict[str, Any]:
    return {"status": verdict.status, "reward": verdict.reward, "reason": verdict.reason,
            "finish_reason": finish_reason}


def generate_pairs(cfg: PairsConfig, show_progress: bool = True) -> dict[str, Any]:
    """Write the pair file(s) ``cfg`` asks for; returns the counts of each split.

    Input is checked before sampling starts, and an existing output file is never replaced.
    """
    from grpo.engines.factory import build_engine
    from grpo.models import load_tokenizer, quiet_transformers, setup_cpu
    from tasks import get_task
    from verifiers import get_verifier

    outputs = [(cfg.split, cfg.limit, Path(cfg.output))]
    if (held := heldout_path(cfg)) is not None:
        outputs.append((cfg.heldout_split, cfg.heldout_limit, held))
    if len({p.resolve() for _, _, p in outputs}) != len(outputs):
        raise ConfigError(f"output and heldout_output are the same file {cfg.output!r}; give two files")
    for _, _, path in outputs:
        if path.exists():
            raise ConfigError(f"{path} already exists; choose another output file, or delete it to write it again")
    task = get_task(cfg.task)
    for split, _, _ in outputs:
        task.rows(split, 1)  # an unknown split fails now
    try:
        verifier = get_verifier(cfg.verifier or task.verifier)
    except ValueError as exc:
        raise ConfigError(f"verifier: {exc}") from exc

    quiet_transformers()
    setup_cpu(cfg.threads)
    tokenizer = load_tokenizer(cfg.model)
    engine = build_engine(cfg.rollout, cfg.model, tokenizer, seed=cfg.seed)
    summary: dict[str, Any] = {"task": task.name, "model": cfg.model.path, "verifier": verifier.name,
                               "group_size": cfg.group_size, "seed": cfg.seed, "files": {}}
    t0 = time.perf_counter()
    results = []
    try:
        for split, limit, path in outputs:
            pairs, counts = pairs_for_split(cfg, task, split, limit, engine, tokenizer, verifier, show_progress)
            if not pairs:
                raise ConfigError(
                    f"no pairs from split {split!r}: of {counts['samples']} samples the verifier judged "
                    f"{counts['statuses']}; a pair needs a correct and an incorrect completion of one prompt. "
                    "Sample more (group_size, limit), at a higher rollout.temperature, or from a stronger policy")
            results.append((path, pairs, counts))
    finally:
        engine.close()
    for path, pairs, counts in results:  # written only once every split has pairs
        write_pairs(path, pairs)
        summary["files"][str(path)] = counts
        print(f"rlvr pairs: {path}: {counts['pairs']} pairs from {counts['prompts_with_pairs']} of "
              f"{counts['prompts']} prompts ({counts['split']}); verdicts {counts['statuses']}", file=sys.stderr)
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    return summary


def add_pairs_arguments(p) -> None:
    """``rlvr pairs`` flags: --config/--set as the training commands, and shortcuts for the common fields."""
    p.add_argument("--config", metavar="FILE", help="YAML config file (fields of PairsConfig in grpo/config.py)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config field; repeatable (e.g. --set group_size=16)")
    p.add_argument("--task", help="a built-in task or a task YAML file (field task)")
    p.add_argument("--model", metavar="PATH", help="the policy that samples: model folder, run folder or hub id "
                                                   "(field model.path)")
    p.add_argument("--output", metavar="PAIRS.jsonl", help="the pair file to write (field output)")
    p.add_argument("--split", help="the split whose prompts are sampled (field split; default train)")
    p.add_argument("--heldout-split", metavar="SPLIT",
                   help="also write pairs from this split, e.g. test (field heldout_split)")
    p.add_argument("--heldout-output", metavar="FILE.jsonl",
                   help="the held-out pair file (default: the output's name with the split, e.g. pairs.test.jsonl)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def overrides_from_args(args) -> list[str]:
    """``--set`` overrides plus the shortcut flags, which win; their values are always strings."""
    extra = []
    for flag, key in CLI_FLAGS.items():
        value = getattr(args, flag, None)
        if value is not None:
            extra.append(f"{key}='{value.replace(chr(39), chr(39) * 2)}'")  # YAML single-quoted: a string
    return list(args.overrides) + extra
