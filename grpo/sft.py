"""Stage 1: supervised fine-tuning on a task's chain-of-thought demonstrations.

The loss is the mean negative log-likelihood of the demonstration tokens (the
prompt is context only), averaged over all completion tokens of the batch.

Under ``torchrun`` every rank draws the same batch order and trains on its contiguous share of
each batch, with the whole batch's token count as the normalizer and gradients summed over
ranks (``grpo/distributed.py``): a step is that of one process with the whole batch. Rank 0
writes the run folder.
"""

from __future__ import annotations

import dataclasses
import random
import time
from pathlib import Path

import torch
from tqdm import tqdm

from grpo import distributed
from grpo.checkpoint import rng_state, save_checkpoint, save_sharded_checkpoint
from grpo.config import ConfigError, SFTConfig, dump_yaml
from grpo.logprobs import completion_logprobs, pack
from grpo.models import load_policy, setup_cpu
from grpo.optim import make_optimizer
from grpo.runfolder import RunLock
from grpo.runlog import RunLog
from tasks import get_task


def demonstrations(task_name: str, tokenizer, max_length: int) -> list[tuple[list[int], list[int]]]:
    """(prompt ids, completion ids + EOS) for every training row that fits ``max_length``."""
    task = get_task(task_name)
    if task.solution_field is None:
        raise ConfigError(f"task {task_name!r} has no demonstrations: SFT imitates a worked solution per row; set "
                          "solution_field in the task YAML to the row field that holds one (e.g. solution_field: "
                          "solution), or use a task that has them (arithmetic, countdown, gsm8k)")
    pairs = []
    for row in task.rows("train"):
        prompt = task.encode(row, tokenizer)  # as the trainer and evaluation will ask it (chat template included)
        # no special tokens: a tokenizer that adds BOS would put one in the middle of the sequence
        completion = tokenizer(" " + row[task.solution_field], add_special_tokens=False).input_ids
        completion.append(tokenizer.eos_token_id)
        if len(prompt) + len(completion) <= max_length:
            pairs.append((prompt, completion))
    if not pairs:
        raise ConfigError(f"no demonstration of {task_name!r} fits max_length={max_length}; raise max_length")
    return pairs


def train_sft(cfg: SFTConfig, show_progress: bool = True) -> Path:
    """Run SFT; returns the folder of the final checkpoint (a Hugging Face model folder)."""
    setup_cpu(cfg.threads)
    distributed.check_divides(cfg.batch_size, "batch_size", distributed.planned_world_size())
    info = distributed.init_distributed(cfg.dist.timeout_s, cfg.dist.bind_cores, cfg.threads)
    cfg = dataclasses.replace(cfg, world_size=info.world_size)
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    run_dir = Path(cfg.output_dir)
    if (run_dir / "metrics.jsonl").is_file() and (run_dir / "metrics.jsonl").stat().st_size > 0:
        raise ConfigError(f"output_dir {str(run_dir)!r} already holds a run; choose another --output-dir")
    model, tokenizer = load_policy(cfg.model)  # bad input fails here, before a file is written
    model.train()
    data = demonstrations(cfg.task, tokenizer, cfg.max_length)
    train_model = distributed.wrap_policy(model, cfg.dist.sharding, cfg.dist.mixed_precision, cfg.dist.cpu_offload)
    distributed.barrier("starting the run")  # every rank passed the checks before rank 0 writes anything
    lock = RunLock(run_dir)
    try:
        if info.is_main:
            lock.acquire()
            if (run_dir / "metrics.jsonl").is_file() and (run_dir / "metrics.jsonl").stat().st_size > 0:
                raise ConfigError(f"output_dir {str(run_dir)!r} already holds a run; choose another --output-dir")
            (run_dir / "config.yaml").write_text(dump_yaml(cfg))
        try:
            final = _sft_loop(cfg, run_dir, train_model, tokenizer, data, show_progress)
        except Exception as exc:
            lost = distributed.as_peer_lost(exc)
            if lost is None:
                raise
            raise ConfigError(f"{lost}; nothing is saved before the last step of an SFT run: start it again") from None
        distributed.shutdown()
        return final
    finally:
        lock.release()


def _sft_loop(cfg: SFTConfig, run_dir: Path, model, tokenizer, data, show_progress: bool) -> Path:
    info = distributed.current()
    device = torch.device(info.device)
    optim = cfg.optim
    optimizer, scheduler = make_optimizer(model, optim.lr, optim.weight_decay, (optim.beta1, optim.beta2),
                                          optim.schedule, optim.warmup_steps, cfg.steps)
    log = RunLog(run_dir, tensorboard=False) if info.is_main else None
    order: list[int] = []
    rng = random.Random(cfg.seed)
    bar = tqdm(range(1, cfg.steps + 1), desc="sft", disable=not (show_progress and info.is_main), dynamic_ncols=True)
    for step in bar:
        t0 = time.perf_counter()
        batch = []
        while len(batch) < cfg.batch_size:  # walk through shuffled epochs
            if not order:
                order = list(range(len(data)))
                rng.shuffle(order)
            batch.append(data[order.pop()])
        num_tokens = sum(len(c) for _, c in batch)  # the whole batch's: every rank draws the same batch
        lo, hi = distributed.shard_range(len(batch), info.rank, info.world_size)
        mine = batch[lo:hi]
        optimizer.zero_grad(set_to_none=True)
        total_loss = 0.0
        starts = range(0, len(mine), optim.micro_batch_size)
        for k, start in enumerate(starts):
            micro = mine[start : start + optim.micro_batch_size]
            packed = pack([p for p, _ in micro], [c for _, c in micro], tokenizer.pad_token_id).to(device)
            with distributed.gradient_sync(model, k == len(starts) - 1):
                logprobs, _ = completion_logprobs(model, packed, share_prompts=cfg.model.share_prompts)
                loss = -(logprobs * packed.completion_mask).sum() / num_tokens  # token-mean over the whole batch
                loss.backward()
            total_loss += loss.item()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), optim.max_grad_norm or float("inf"))
        optimizer.step()
        scheduler.step()
        total_loss = distributed.sum_over_ranks([total_loss], "summing the loss")[0]
        seconds = distributed.max_over_ranks([time.perf_counter() - t0], "reducing the timings")[0]
        if log is not None:
            log.log(step, {"sft/loss": total_loss, "sft/grad_norm": distributed.to_float(grad_norm),
                           "sft/lr": scheduler.get_last_lr()[0], "time/step": seconds,
                           "sft/tokens_per_second": num_tokens / seconds, "dist/world_size": info.world_size})
        bar.set_postfix(loss=f"{total_loss:.3f}")
    state = {"step": cfg.steps, "scheduler": scheduler.state_dict(), "rng": rng_state()}
    if info.is_distributed:
        final = save_sharded_checkpoint(run_dir, cfg.steps, model, optimizer, tokenizer, state, keep=1,
                                        sharding=cfg.dist.sharding)
    else:
        final = save_checkpoint(run_dir, cfg.steps, model, tokenizer, {**state, "optimizer": optimizer.state_dict()},
                                keep=1)
    if log is not None:
        log.close()
    return final if final is not None else run_dir / "checkpoints" / f"step-{cfg.steps}"
