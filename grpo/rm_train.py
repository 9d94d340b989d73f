"""``rlvr rm``: train a reward model on preference pairs with the Bradley-Terry loss.

Each step scores the chosen and the rejected sequence of ``batch_size`` pairs
and minimises ``-log sigmoid(r_chosen - r_rejected - margin)`` (plus an optional
centering term; ``grpo.rlhf_losses.bradley_terry_loss``). Checkpoints are
Hugging Face sequence-classifier folders holding ``reward_stats.json`` (the
reward mean and std over the training pairs, which PPO normalizes with). At the
end ``eval/report.json`` and ``eval/report.md`` give held-out accuracy, the mean
margin, a calibration table, and optionally the agreement with the verifier on
fresh policy samples.

Under ``torchrun`` every rank draws the same batch of pairs and trains on its contiguous share,
with the whole batch's pair count as the normalizer and gradients summed over ranks
(``grpo/distributed.py``): a step is that of one process with the whole batch. Scoring (held-out
accuracy, the reward statistics, the report) is shared out the same way; rank 0 writes the run folder.
"""

from __future__ import annotations

import dataclasses
import random
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import torch
from tqdm import tqdm

from grpo import distributed
from grpo.checkpoint import rng_state, save_checkpoint, save_sharded_checkpoint
from grpo.config import ConfigError, RewardModelConfig, dump_yaml
from grpo.models import setup_cpu, use_classifier_compute_dtype
from grpo.optim import make_optimizer
from grpo.pair_data import BatchOrder, PairData, TokenPair, chunks, load_pair_data, refuse_existing_run
from grpo.reward_model import RewardStats, TokenizerWithRewardStats, init_reward_model, score_sequences, \
    sequence_rewards
from grpo.rlhf_losses import bradley_terry_loss
from grpo.rm_eval import agreement_on_policy_samples, calibration_table, pairwise_metrics, write_report
from grpo.runfolder import RunLock
from grpo.runlog import RunLog


def pair_rewards(model: torch.nn.Module, pairs: Sequence[TokenPair], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(b,) chosen and (b,) rejected rewards of ``pairs``, from one forward pass over 2b sequences."""
    sequences = [p.prompt_ids + p.chosen_ids for p in pairs] + [p.prompt_ids + p.rejected_ids for p in pairs]
    rewards = sequence_rewards(model, sequences, pad_id)  # (2b,)
    return rewards[: len(pairs)], rewards[len(pairs) :]


@torch.no_grad()
def score_pairs(model: torch.nn.Module, pairs: Sequence[TokenPair], pad_id: int,
                batch_size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """(N,) chosen and (N,) rejected rewards of every pair, without grad. Over several ranks each
    scores its share of the pairs and every rank gets all scores (every rank must call it)."""
    info = distributed.current()
    lo, hi = distributed.shard_range(len(pairs), info.rank, info.world_size)
    mine = pairs[lo:hi]
    # an FSDP model is unsharded once, so ranks with different numbers of batches run no collective
    with distributed.gathered_for_generation(model):
        plain = distributed.unwrap(model)
        chosen = score_sequences(plain, [p.prompt_ids + p.chosen_ids for p in mine], pad_id, batch_size)
        rejected = score_sequences(plain, [p.prompt_ids + p.rejected_ids for p in mine], pad_id, batch_size)
    if not info.is_distributed:
        return chosen, rejected
    parts = distributed.gather_objects((chosen.tolist(), rejected.tolist()), "gathering the pair scores")
    return (torch.tensor([x for c, _ in parts for x in c], dtype=chosen.dtype),
            torch.tensor([x for _, r in parts for x in r], dtype=rejected.dtype))


def margins(pairs: Sequence[TokenPair], use_margin: bool) -> torch.Tensor | None:
    """(b,) margins (0 where a pair has none), or None when no pair has one or they are off."""
    if not use_margin or all(p.margin is None for p in pairs):
        return None
    return torch.tensor([p.margin or 0.0 for p in pairs], dtype=torch.float)


def train_reward_model(cfg: RewardModelConfig, show_progress: bool = True) -> Path:
    """Train as configured; returns the final checkpoint (a reward-model folder).

    Everything that can be wrong with the input (the run folder, the model, the pair files)
    is checked before the first file is written.
    """
    setup_cpu(cfg.threads)
    distributed.check_divides(cfg.batch_size, "batch_size", distributed.planned_world_size())
    info = distributed.init_distributed(cfg.dist.timeout_s, cfg.dist.bind_cores, cfg.threads)
    cfg = dataclasses.replace(cfg, world_size=info.world_size)
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)  # the fresh score head's initialisation (alike on every rank)
    run_dir = Path(cfg.output_dir)
    refuse_existing_run(run_dir)
    model, tokenizer = init_reward_model(cfg.model)
    use_classifier_compute_dtype(model, cfg.model)
    model.train()
    data = load_pair_data(cfg.data, tokenizer, cfg.seed)
    if cfg.agreement.policy is not None:  # fail now rather than after training
        from grpo.models import resolve_model_path
        from tasks import get_task

        resolve_model_path(cfg.agreement.policy)
        get_task(cfg.agreement.task).rows(cfg.agreement.split, 1)
    train_model = distributed.wrap_policy(model, cfg.dist.sharding, cfg.dist.mixed_precision, cfg.dist.cpu_offload)
    distributed.barrier("starting the run")  # every rank passed the checks before rank 0 writes anything
    lock = RunLock(run_dir)  # one process per run folder
    try:
        if info.is_main:
            lock.acquire()
            refuse_existing_run(run_dir)  # again: another process may have started one since the check above
            (run_dir / "config.yaml").write_text(dump_yaml(cfg))
        try:
            final = _train(cfg, run_dir, train_model, tokenizer, data, show_progress)
        except Exception as exc:
            lost = distributed.as_peer_lost(exc)
            if lost is None:
                raise
            raise ConfigError(f"{lost}; the newest complete checkpoint in {run_dir / 'checkpoints'} holds a usable "
                              "reward model, or start the run again") from None
        distributed.shutdown()
        return final
    finally:
        lock.release()


def _train(cfg: RewardModelConfig, run_dir: Path, model, tokenizer, data: PairData, show_progress: bool) -> Path:
    info = distributed.current()
    counts = data.summary["train_file_counts"]
    distributed.print_main(f"rlvr rm: {len(data.train)} training pairs, {len(data.heldout)} held-out pairs "
                           f"({counts['dropped_too_long']} longer than data.max_length dropped, "
                           f"{counts['used_sampled_ids']} with the sampled token ids)", file=sys.stderr)

    pad_id = tokenizer.pad_token_id
    optim = cfg.optim
    optimizer, scheduler = make_optimizer(model, optim.lr, optim.weight_decay, (optim.beta1, optim.beta2),
                                          optim.schedule, optim.warmup_steps, cfg.steps)
    order = BatchOrder(len(data.train), cfg.seed)
    log = RunLog(run_dir, tensorboard=False) if info.is_main else None
    final = run_dir
    bar = tqdm(range(1, cfg.steps + 1), desc="rm", disable=not (show_progress and info.is_main), dynamic_ncols=True)
    for step in bar:
        t0 = time.perf_counter()
        batch = [data.train[i] for i in order.next(cfg.batch_size)]  # the whole batch: alike on every rank
        lo, hi = distributed.shard_range(len(batch), info.rank, info.world_size)
        mine = batch[lo:hi]  # batch_size divides by the world size: every rank runs as many micro-batches
        optimizer.zero_grad(set_to_none=True)
        sums: dict[str, float] = {}
        micro_batches = chunks(mine, optim.micro_batch_size)
        for k, micro in enumerate(micro_batches):
            with distributed.gradient_sync(model, k == len(micro_batches) - 1):
                chosen, rejected = pair_rewards(model, micro, pad_id)  # (b,), (b,)
                loss, m = bradley_terry_loss(chosen, rejected, margins(micro, cfg.use_margin), cfg.center_coef,
                                             num_pairs=len(batch))
                loss.backward()
            for key, value in m.items():  # pair-weighted means over the micro-batches
                if key != "num_pairs":
                    sums[key] = sums.get(key, 0.0) + value * len(micro) / len(batch)
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), optim.max_grad_norm or float("inf"))
        optimizer.step()
        scheduler.step()
        sums = dict(zip(sums, distributed.sum_over_ranks(list(sums.values()), "summing the loss metrics")))
        seconds = distributed.max_over_ranks([time.perf_counter() - t0], "reducing the timings")[0]
        metrics = {f"rm/{k}": v for k, v in sums.items()}
        metrics.update({"optim/grad_norm": distributed.to_float(grad_norm), "optim/lr": scheduler.get_last_lr()[0],
                        "time/step": seconds, "dist/world_size": info.world_size})
        if data.heldout and ((cfg.eval_every and step % cfg.eval_every == 0) or step == cfg.steps):
            held = pairwise_metrics(*score_pairs(model, data.heldout, pad_id, optim.micro_batch_size * 2))
            metrics.update({f"eval/{k}": v for k, v in held.items() if k != "pairs"})
        if log is not None:
            log.log(step, metrics)
        bar.set_postfix(loss=f"{sums['bt_loss']:.3f}", acc=f"{sums['accuracy']:.2f}")
        if step % cfg.save_every == 0 or step == cfg.steps:
            train_scores = score_pairs(model, data.train, pad_id, optim.micro_batch_size * 2)
            stats = RewardStats.of(torch.cat(train_scores))  # over every training completion, chosen and rejected
            state = {"step": step, "scheduler": scheduler.state_dict(), "rng": rng_state()}
            with_stats = TokenizerWithRewardStats(tokenizer, stats)
            if info.is_distributed:
                final = save_sharded_checkpoint(run_dir, step, model, optimizer, with_stats, state,
                                                keep=cfg.keep_checkpoints, sharding=cfg.dist.sharding)
            else:
                final = save_checkpoint(run_dir, step, model, with_stats, {**state, "optimizer": optimizer.state_dict()},
                                        keep=cfg.keep_checkpoints)
    if log is not None:
        log.close()

    final = final if final is not None else run_dir / "checkpoints" / f"step-{cfg.steps}"  # ranks other than 0
    report = build_report(cfg, model, tokenizer, data, final, train_scores)
    if info.is_main:
        paths = write_report(report, run_dir / "eval")
        print(paths["md"].read_text(), end="", file=sys.stderr)
    return final


def build_report(cfg: RewardModelConfig, model, tokenizer, data, final: Path,
                 train_scores: tuple[torch.Tensor, torch.Tensor]) -> dict[str, Any]:
    """The held-out report of the final model; ``train_scores``: its (N,) chosen and (N,) rejected
    rewards of the training pairs."""
    pad_id = tokenizer.pad_token_id
    batch = cfg.optim.micro_batch_size * 2
    train_chosen, train_rejected = train_scores
    stats = RewardStats.of(torch.cat([train_chosen, train_rejected]))
    report: dict[str, Any] = {
        "model": str(final),
        "data": data.summary,
        "train": pairwise_metrics(train_chosen, train_rejected),
        "reward_stats": {"mean": stats.mean, "std": stats.std, "n": stats.n},
        "heldout": None,
        "agreement": None,
    }
    if data.heldout:
        chosen, rejected = score_pairs(model, data.heldout, pad_id, batch)
        report["heldout"] = {**pairwise_metrics(chosen, rejected),
                             "calibration": calibration_table(chosen, rejected, cfg.calibration_bins)}
    if cfg.agreement.policy is not None:  # every rank samples alike (seeded); the model runs with no collective
        with distributed.gathered_for_generation(model):
            report["agreement"] = agreement_on_policy_samples(distributed.unwrap(model), tokenizer, cfg.agreement,
                                                              cfg.seed)
    return report
