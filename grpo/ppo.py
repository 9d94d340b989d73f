"""PPO with a critic (Schulman et al. 2017, arXiv:1707.06347) for language models, read top to bottom.

The RLHF recipe of Ziegler et al. 2019 (arXiv:1909.08593) and InstructGPT (arXiv:2203.02155), on the
GRPO loop's machinery. Each step: sample completions (one per prompt unless ``algo.group_size`` says
more) with the rollout engine, score them with the reward model and/or the verifier, compute the
rollout once as the trainer sees it (policy, frozen reference, critic), build per-token rewards (the
score on the last token, ``- kl_coef * KL`` on every token), turn them into advantages with GAE, and
take ``ppo_epochs`` passes of clipped policy and value updates over shuffled mini-batches; then hand
the weights to the engine and adapt the KL coefficient. With a reward model, the reward-hacking
monitor (``grpo/monitor.py``) compares the proxy (reward model) with the gold (verifier) every step.

From the GRPO loop (``grpo/trainer.py``) this reuses the rollout engines and their weight sync and
log-prob probe, sampling and verifying, the prompt stream, held-out evaluation, step metrics and
sample rows; from the rest of the package the run folder, checkpoints, logs and plots. New here:
the critic (``grpo/critic.py``), GAE and the KL controller (``grpo/rlhf_losses.py``), the monitor.

Under ``torchrun`` each rank samples its share of the step's prompts (seeded per prompt), scores
and views it, and every rank then holds the whole batch (``ppo_step.gather_rollout``); policy,
reference and critic are sharded (FSDP2) or replicated (DDP) like GRPO's policy, the frozen reward
model is replicated, and the update sums each rank's gradients of its own samples: a 2-rank run
takes one process's steps. Rank 0 writes the run folder; checkpoints are sharded (policy and
critic, with their optimizers) besides the consolidated folders, and resume on any number of ranks.
"""

from __future__ import annotations

import dataclasses
import math
import os
import random
import sys
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch
from tqdm import tqdm

from grpo import distributed
from grpo.checkpoint import (SHARDED_DIR, latest_checkpoint, load_trainer_state, rng_state, save_checkpoint,
                             save_sharded_checkpoint, set_rng_state, sharded_state_of)
from grpo.config import ConfigError, PPOConfig, to_dict
from grpo.console import Console, precision_label
from grpo.critic import FolderInfo, ValueModel, check_compatible, inspect_folder, load_critic, model_vocab_size
from grpo.engines.base import Completions, RolloutEngine, SamplingParams
from grpo.engines.factory import build_engine, sync_weights
from grpo.losses import kl_k3
from grpo.models import load_policy, setup_cpu, use_classifier_compute_dtype
from grpo.monitor import RewardHackingMonitor, offer_best_gold, prune_checkpoints, read_best_gold, sqrt_kl
from grpo.optim import make_optimizer
from grpo.plots import write_plots, write_ppo_plots
from grpo.ppo_step import (Models, gather_rollout, ppo_update, proxy_and_gold, rm_scores, rollout_metrics,
                           rollout_view, score_samples, stop_if_not_finite)
from grpo.precision import compute_dtype_of
from grpo.reward_model import RewardStats, load_reward_model, load_reward_stats
from grpo.rlhf_losses import (gae, kl_controller_from_state_dict, kl_penalized_rewards, kl_penalty, make_kl_controller,
                              whiten)
from grpo.runfolder import RunLock, RunStopped, StopSignals
from grpo.runlog import RunLog
from grpo.trainer import (PromptStream, check_logprob_agreement, continue_note, evaluate_heldout, prepare_task,
                          prompt_seed, resume_point, sample_and_verify, sample_rows, start_run_folder,
                          step_metrics, stopped_message)

CRITIC_DIR = "critic"  # the critic's folder inside a checkpoint (the policy is at the checkpoint's top)
MONITOR_EXIT_CODE = 5  # the reward-hacking monitor stopped the run
_KEEP_ALL = 1 << 30  # save_checkpoint prunes nothing; prune_checkpoints does, sparing the best-gold one


class PolicyAndCritic:
    """What ``save_checkpoint`` saves as its model: the policy at the checkpoint's top (loadable by
    ``AutoModelForCausalLM`` and vLLM, like a GRPO checkpoint) and the critic in ``critic/``, inside
    the same atomic rename."""

    def __init__(self, policy: torch.nn.Module, critic: torch.nn.Module):
        self.policy, self.critic = policy, critic

    def save_pretrained(self, folder: str | Path, **kwargs: Any) -> None:
        self.policy.save_pretrained(folder, **kwargs)
        self.critic.save_pretrained(Path(folder) / CRITIC_DIR, **kwargs)


class RecordingEngine:
    """An engine that remembers what it generated (held-out evaluation: the reward model scores the same samples)."""

    def __init__(self, engine: RolloutEngine):
        self.engine = engine
        self.calls: list[tuple[list[list[int]], Completions]] = []

    def generate(self, prompt_ids: Sequence[Sequence[int]], n: int, sampling: SamplingParams,
                 seeds: Sequence[int] | None = None) -> Completions:
        out = self.engine.generate(prompt_ids, n, sampling, seeds=seeds)
        self.calls.append(([list(p) for p in prompt_ids], out))
        return out

    def load_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
        self.engine.load_weights(named_tensors)

    def close(self) -> None:
        self.engine.close()


# ------------------------------------------------------------- setup: every check before a file is written


def load_models(cfg: PPOConfig, policy_cfg, checkpoint: Path | None) -> Models:
    """Policy, reference, critic and reward model, checked against each other (vocabularies, heads,
    reward statistics): a ``ConfigError`` naming the field and the fix before anything is written."""
    rm_cfg = cfg.reward.reward_model
    rm_info: FolderInfo | None = None
    stats: RewardStats | None = None
    if rm_cfg.path is not None:
        rm_info = inspect_folder(rm_cfg.path, "reward.reward_model.path", cfg.model.trust_remote_code)
        try:
            stats = load_reward_stats(rm_info.path)
        except ConfigError as exc:
            raise ConfigError(f"config field 'reward.reward_model.path' = {rm_cfg.path!r}: {exc}") from None

    policy, tokenizer = load_policy(policy_cfg)
    vocab = model_vocab_size(policy)
    if rm_info is not None:
        check_compatible(rm_info, "reward.reward_model.path", vocab, role="reward model")

    # the critic: resumed from the checkpoint, else critic.path, else the reward model, else the policy
    if checkpoint is not None:
        critic_field, critic_path = "critic.path", str(checkpoint / CRITIC_DIR)
    elif cfg.critic.path is not None:
        critic_field, critic_path = "critic.path", cfg.critic.path
    elif rm_cfg.path is not None:
        critic_field, critic_path = "reward.reward_model.path", rm_cfg.path
    else:
        critic_field, critic_path = "model.path", policy_cfg.path
    critic_info = inspect_folder(critic_path, critic_field, cfg.model.trust_remote_code)
    check_compatible(critic_info, critic_field, vocab, role="critic")

    reward_model = None
    if rm_info is not None:
        try:
            reward_model, rm_tokenizer = load_reward_model(rm_info.path, cfg.model.dtype, cfg.model.trust_remote_code)
        except ConfigError as exc:
            raise ConfigError(f"config field 'reward.reward_model.path' = {rm_cfg.path!r}: {exc}") from None
        if rm_tokenizer.get_vocab() != tokenizer.get_vocab():
            raise ConfigError(
                f"config field 'reward.reward_model.path' = {rm_cfg.path!r}: its tokenizer is not the policy's "
                "(same size, other tokens), so it would read the policy's token ids as other words. Fix: train the "
                "reward model from the policy's tokenizer (`rlvr rm` with model.path set to the policy)")
        reward_model.requires_grad_(False)
        use_classifier_compute_dtype(reward_model, cfg.model)
    critic, fresh = load_critic(critic_info, critic_field, cfg.model.dtype, cfg.model.trust_remote_code)
    critic_compute = use_classifier_compute_dtype(critic, cfg.model)
    reference, _ = load_policy(cfg.model)
    reference.eval().requires_grad_(False)
    source = (f"{critic_path} ({'policy backbone, fresh value head' if fresh else 'backbone and value head loaded'}; "
              f"{precision_label(cfg.model.dtype, critic_compute)})")
    return Models(policy=policy.train(), reference=reference, critic=ValueModel(critic), reward_model=reward_model,
                  reward_stats=stats, tokenizer=tokenizer, critic_source=source)


def heldout_rm_score(models: Models, recorder: RecordingEngine, batch_size: int) -> float:
    """Mean normalized reward-model score of the samples held-out evaluation drew (the proxy beside pass@1)."""
    prompts: list[list[int]] = []
    completions: list[list[int]] = []
    for prompt_ids, out in recorder.calls:
        for i, ids in zip(out.prompt_index, out.token_ids):
            if ids:
                prompts.append(prompt_ids[i])
                completions.append(ids)
    if not completions:
        return math.nan
    raw = rm_scores(models, prompts, completions, batch_size)
    return float(models.reward_stats.normalize(raw).mean())


def ppo_sample_rows(batch, scores, advantages: torch.Tensor, sequence_kl: torch.Tensor, count: int, tokenizer,
                    task) -> list[dict[str, Any]]:
    """``count`` samples for samples.jsonl, spread over the batch, with their score, reward-model score,
    KL and summed advantage (``advantages``: (B, T) before whitening; ``sequence_kl``: (B,))."""
    picked = sorted({round(x) for x in np.linspace(0, len(batch) - 1, min(count, len(batch)))})
    rows = sample_rows(batch.take(picked), advantages[picked].sum(-1), len(picked), tokenizer, task, 1)
    for row, i in zip(rows, picked):
        row.pop("group", None)
        row["advantage_sum"] = row.pop("advantage")
        row.update(score=float(scores.score[i]), kl=float(sequence_kl[i]))
        if scores.rm is not None:
            row["rm_score"] = float(scores.rm[i])
    return rows


# --------------------------------------------------------------------------- the loop


def train_ppo(cfg: PPOConfig, resume: bool = False, show_progress: bool = True) -> Path:
    """Run PPO as configured; returns the run folder.

    Raises ``RunStopped`` when a loss or the reward is not a number (exit code 4; before the
    optimizer step, the newest checkpoint intact), when the reward-hacking monitor stops the run
    (``monitor.action: stop``; exit code 5; a checkpoint of that step is saved), on SIGINT / SIGTERM,
    and under torchrun when another rank died or stopped answering (exit code 4, every rank).
    """
    setup_cpu(cfg.threads)
    # several processes: bad launches stop before the process group is even joined
    distributed.check_divides(cfg.algo.prompts_per_step, "algo.prompts_per_step", distributed.planned_world_size())
    info = distributed.init_distributed(cfg.dist.timeout_s, cfg.dist.bind_cores, cfg.threads)
    cfg = dataclasses.replace(cfg, world_size=info.world_size)
    run_dir = Path(cfg.output_dir)
    lock = RunLock(run_dir)
    if info.is_main and run_dir.is_dir():  # first of all: another live run may be writing here
        lock.acquire()
    try:
        checkpoint, changes = resume_point(run_dir, resume, to_dict(cfg))
        sharded = sharded_state_of(checkpoint, parts=(CRITIC_DIR,)) if checkpoint is not None else None

        # task, verifier, models: everything that can fail on bad input, before a file is written
        task, verifier, eval_verifier, train_rows, heldout = prepare_task(cfg)
        if (note := verifier.deadline_note()) is not None and info.is_main:
            print(f"rlvr: warning: {note}", file=sys.stderr)
        random.seed(cfg.seed)
        np.random.seed(cfg.seed)
        torch.manual_seed(cfg.seed)
        policy_cfg = cfg.model if checkpoint is None else dataclasses.replace(cfg.model, path=str(checkpoint))
        models = load_models(cfg, policy_cfg, checkpoint)
        if info.is_distributed:  # policy, reference, critic sharded (or replicated) alike; the reward model replicated
            d = cfg.dist
            models.policy = distributed.wrap_policy(models.policy, d.sharding, d.mixed_precision, d.cpu_offload)
            models.reference = distributed.wrap_policy(models.reference, d.sharding, d.mixed_precision,
                                                       d.cpu_offload, trainable=False)
            models.critic = distributed.wrap_policy(models.critic, d.sharding, d.mixed_precision, d.cpu_offload)
            if models.reward_model is not None:
                models.reward_model.to(info.device)
        distributed.barrier("starting the run")  # every rank passed the checks before rank 0 writes anything

        with StopSignals() as stop:
            start_run_folder(run_dir, lock, cfg, checkpoint, changes)
            try:
                run = _ppo_loop(cfg, run_dir, checkpoint, sharded, task, verifier, eval_verifier, train_rows, heldout,
                                models, policy_cfg, stop, show_progress)
            except Exception as exc:  # a rank died or hangs: every rank stops, saying so (not a traceback)
                lost = distributed.as_peer_lost(exc)
                if lost is None:
                    raise
                raise RunStopped(f"rlvr ppo: error: {lost}. {continue_note(run_dir, 'ppo')}", 4) from None
            distributed.shutdown()
            return run
    finally:
        lock.release()


def _ppo_loop(cfg: PPOConfig, run_dir: Path, checkpoint: Path | None, sharded: Path | None, task, verifier,
              eval_verifier, train_rows: list[dict[str, Any]], heldout: list[dict[str, Any]], models: Models,
              policy_cfg, stop: StopSignals, show_progress: bool) -> Path:
    info = distributed.current()
    algo, tokenizer = cfg.algo, models.tokenizer
    G, P = algo.group_size, algo.prompts_per_step
    B = G * P
    stream = PromptStream(len(train_rows), cfg.seed)
    prompt_cache: dict[int, list[int]] = {}
    heldout_ids = [task.encode(r, tokenizer) for r in heldout]
    heldout_fields = [{"id": task.problem_id(r, i), "prompt": task.prompt(r, tokenizer),
                       **({"answer": r["answer"]} if "answer" in r else {})} for i, r in enumerate(heldout)]
    engine = build_engine(cfg.rollout, policy_cfg, tokenizer, model=distributed.unwrap(models.policy), seed=cfg.seed)
    # seeds per prompt make the samples independent of the number of ranks (and of which rank samples what)
    per_prompt = cfg.rollout.seeding == "per_prompt" or (cfg.rollout.seeding == "auto" and info.is_distributed)
    # held-out samples: split over ranks, seeded per problem (so evaluation, too, is the same on any number of ranks)
    eval_engine = distributed.ShardedEngine(engine) if per_prompt else engine

    # optimizers: policy steps only after the critic warm-up; both step once per mini-batch and PPO epoch
    updates_per_step = algo.ppo_epochs * math.ceil(B / algo.mini_batch_size)
    policy_opt, policy_sched = make_optimizer(
        models.policy, cfg.optim.lr, cfg.optim.weight_decay, (cfg.optim.beta1, cfg.optim.beta2), cfg.optim.schedule,
        cfg.optim.warmup_steps, max(1, (cfg.steps - algo.critic_warmup_steps) * updates_per_step))
    critic_opt, critic_sched = make_optimizer(
        models.critic, cfg.critic.optim.lr, cfg.critic.optim.weight_decay,
        (cfg.critic.optim.beta1, cfg.critic.optim.beta2), cfg.critic.optim.schedule, cfg.critic.optim.warmup_steps,
        cfg.steps * updates_per_step)
    optimizers = {"policy": policy_opt, "policy_scheduler": policy_sched,
                  "critic": critic_opt, "critic_scheduler": critic_sched}
    kl_ctl = make_kl_controller(algo.kl_controller, kl_coef=algo.kl_coef, target=algo.kl_target,
                                horizon=algo.kl_horizon)
    monitor = RewardHackingMonitor(window=cfg.monitor.window, min_gold_drop=cfg.monitor.min_gold_drop,
                                   min_proxy_slope=cfg.monitor.min_proxy_slope,
                                   significance=cfg.monitor.significance)
    watching = models.reward_model is not None  # proxy vs gold needs a learned reward
    start_step, prompts_consumed = 0, 0
    if checkpoint is not None:
        state = load_trainer_state(checkpoint)
        if sharded is not None:  # written by several processes: resharded to this run's
            distributed.load_sharded_state(sharded, models.policy, policy_opt)
            distributed.load_sharded_state(checkpoint / CRITIC_DIR / SHARDED_DIR, models.critic, critic_opt)
        elif info.is_distributed:  # a one-process checkpoint: its optimizer states, sharded like this run
            distributed.load_full_optimizer_state(models.policy, policy_opt, state["policy"])
            distributed.load_full_optimizer_state(models.critic, critic_opt, state["critic"])
        else:
            policy_opt.load_state_dict(state["policy"])
            critic_opt.load_state_dict(state["critic"])
        for name in ("policy_scheduler", "critic_scheduler"):
            optimizers[name].load_state_dict(state[name])
        set_rng_state(state["rng"])
        kl_ctl = kl_controller_from_state_dict(state["kl_controller"])
        monitor.load_state_dict(state["monitor"])
        start_step, prompts_consumed = state["step"], state["prompts_consumed"]
    log = RunLog(run_dir, resume_step=start_step if checkpoint is not None else None) if info.is_main else None
    sampling = cfg.rollout.sampling()
    # the agreement probe compares full-softmax log-probs; top-k / top-p samplers report truncated ones
    probe_limit = cfg.rollout.max_logprob_diff if cfg.rollout.top_k == 0 and cfg.rollout.top_p == 1.0 else None
    console = Console(show_progress and info.is_main, out=None if info.is_main else open(os.devnull, "w"))
    reward_desc = " + ".join(
        ([f"{cfg.reward.reward_model.weight} x reward model {cfg.reward.reward_model.path} ("
          f"{precision_label(cfg.model.dtype, compute_dtype_of(models.reward_model.base_model))})"]
         if models.reward_model is not None else [])
        + ([f"{cfg.reward.verifier_weight} x verifier {verifier.name}"] if cfg.reward.verifier_weight > 0 else []))
    precision = precision_label(cfg.model.dtype, compute_dtype_of(distributed.unwrap(models.policy)))
    distributed.print_main(f"rlvr ppo: {run_dir}\n  policy    {policy_cfg.path} ({precision})\n  reward    {reward_desc}; "
          f"gold: verifier {eval_verifier.name}\n  critic    {models.critic_source}\n  batch     {P} prompts x {G} "
          f"samples, {algo.ppo_epochs} epochs of mini-batches of {algo.mini_batch_size}, {cfg.steps} steps"
          + (f" (the first {algo.critic_warmup_steps} train only the critic)" if algo.critic_warmup_steps else "")
          + (f"\n  ranks     {info.world_size} ({cfg.dist.sharding})" if info.is_distributed else ""),
          file=sys.stderr, flush=True)

    saved_step, step, warned = start_step, start_step, False

    def save(at_step: int, gold_score: float | None, gold_source: str) -> None:
        nonlocal saved_step
        state = {"step": at_step, "prompts_consumed": prompts_consumed, "rng": rng_state(),
                 "kl_controller": kl_ctl.state_dict(), "monitor": monitor.state_dict(),
                 "policy_scheduler": policy_sched.state_dict(), "critic_scheduler": critic_sched.state_dict()}
        if info.is_distributed:  # the optimizer states go into the shards
            save_sharded_checkpoint(run_dir, at_step, models.policy, policy_opt, tokenizer, state, keep=_KEEP_ALL,
                                    sharding=cfg.dist.sharding, parts={CRITIC_DIR: (models.critic, critic_opt)})
        else:
            state.update(policy=policy_opt.state_dict(), critic=critic_opt.state_dict())
            save_checkpoint(run_dir, at_step, PolicyAndCritic(models.policy, models.critic), tokenizer, state,
                            keep=_KEEP_ALL)
        if info.is_main:
            best = offer_best_gold(run_dir, at_step, gold_score, gold_source) if watching and gold_score is not None \
                else read_best_gold(run_dir)
            prune_checkpoints(run_dir, cfg.keep_checkpoints, protect=[best.step] if best is not None else [])
        saved_step = at_step

    bar = tqdm(range(start_step + 1, cfg.steps + 1), desc="ppo", disable=not (show_progress and info.is_main),
               dynamic_ncols=True, initial=start_step, total=cfg.steps)
    signalled = False
    try:
        for step in bar:
            t_step = time.perf_counter()
            timing = {"generate": 0.0, "verify": 0.0, "score": 0.0, "forward": 0.0, "update": 0.0, "sync": 0.0}
            train_policy = step > algo.critic_warmup_steps

            # 1. sample and 2. verify: G completions for each of P prompts; the verifier gives the gold score.
            # Each rank takes its contiguous share of the prompts, each prompt seeded by its stream position
            indices = stream.take(prompts_consumed, P)
            lo, hi = distributed.shard_range(P, info.rank, info.world_size)
            seeds = [prompt_seed(cfg.seed, prompts_consumed + k) for k in range(lo, hi)] if per_prompt else None
            indices = indices[lo:hi]
            prompts_consumed += P
            for i in indices:
                if i not in prompt_cache:
                    prompt_cache[i] = task.encode(train_rows[i], tokenizer)
            batch = sample_and_verify(engine, [train_rows[i] for i in indices], [prompt_cache[i] for i in indices],
                                      G, sampling, verifier, cfg.reward, timing, seeds=seeds)

            # 3. score: reward model (normalized: the proxy) and/or verifier, one score per sample
            t0 = time.perf_counter()
            scores = score_samples(models, batch, cfg)
            timing["score"] = time.perf_counter() - t0

            # 4. the rollout as the trainer sees it, once: pi_old, the reference, the critic's values; then every
            # rank holds the whole batch (one process: nothing to gather), and all below is one process's
            t0 = time.perf_counter()
            view = rollout_view(models, batch, cfg)
            batch, scores, view, shares = gather_rollout(batch, scores, view)
            bad = (~torch.isfinite(scores.score)).nonzero().flatten().tolist()
            if bad:
                stop_if_not_finite(scores.score[bad[0]], f"reward of sample {bad[0]} ({len(bad)} of {len(batch)} "
                                    "samples)", f"step {step}", run_dir)
            mask = view.completion_mask  # (B, T) bool
            if probe_limit is not None:  # the engine must sample from the weights the trainer last synced
                check_logprob_agreement(float((view.old_logprobs - view.sampler_logprobs)[mask].abs().mean()),
                                        probe_limit)
            timing["forward"] = time.perf_counter() - t0

            # 5. per-token rewards (score on the last token, -kl_coef * KL on every token) -> GAE -> advantages
            truncated = torch.tensor([f == "length" for f in batch.finish_reason])  # (B,) cut without EOS
            kl = kl_penalty(view.old_logprobs, view.ref_logprobs, algo.kl_estimator)  # (B, T)
            # KL per sample, summed over its tokens, for the controller, the logs and sqrt(KL): k3, unbiased per
            # token given the prefix, never below 0, low variance (the reward's penalty uses algo.kl_estimator)
            sequence_kl = torch.where(mask, kl_k3(view.old_logprobs, view.ref_logprobs), 0.0).sum(-1)  # (B,)
            stop_if_not_finite(sequence_kl.sum(), "KL to the reference", f"step {step}", run_dir)
            rewards = kl_penalized_rewards(scores.score, kl, mask, kl_coef=kl_ctl.kl_coef,
                                           score_clip=algo.reward_clip, truncated=truncated,
                                           missing_eos_penalty=algo.missing_eos_penalty)  # (B, T)
            if algo.bootstrap_truncated:  # a cut completion is an interrupted episode: V(s_L) stands for the rest
                advantages, returns = gae(rewards, view.old_values, mask, gamma=algo.gamma, lam=algo.lam,
                                          truncated=truncated, bootstrap_value=view.final_values)
            else:  # the score judged the cut text: the episode ends there
                advantages, returns = gae(rewards, view.old_values, mask, gamma=algo.gamma, lam=algo.lam)
            loss_mask = mask.float() * scores.sample_weight[:, None]  # (B, T) masked-out samples drop from the losses
            metrics = rollout_metrics(scores, view, kl, rewards, returns, advantages, loss_mask, sequence_kl,
                                      kl_coef=kl_ctl.kl_coef, reward_clip=algo.reward_clip,
                                      tis_cap=algo.tis_cap if algo.tis else None)
            raw_advantages = advantages
            if algo.whiten_advantages:
                advantages = whiten(advantages, loss_mask)

            # 6. update: ppo_epochs over shuffled mini-batches; during the critic warm-up only the critic learns
            t0 = time.perf_counter()
            metrics.update(ppo_update(models, batch, view, advantages, returns, loss_mask, cfg, optimizers,
                                      train_policy=train_policy, step=step, run_dir=run_dir, shares=shares))
            metrics["ppo/policy_trained"] = float(train_policy)
            timing["update"] = time.perf_counter() - t0

            # 7. sync (grpo.engines.factory.sync_weights, as in GRPO; the next step's probe checks it), and the KL
            # coefficient of the next step from this step's KL per sample (Ziegler et al. 2019, sec. 2.2)
            t0 = time.perf_counter()
            if train_policy:
                sync_weights(engine, models.policy)
                kl_ctl = kl_ctl.update(float(sequence_kl.mean()), B)
            timing["sync"] = time.perf_counter() - t0

            # log, watch proxy against gold, evaluate, checkpoint
            verified = step_metrics(batch, G, 1, P)  # the verifier's view: accuracy, lengths, truncation
            verified["reward/verifier_mean"] = verified.pop("reward/mean")
            if G == 1:
                verified.pop("reward/zero_variance_groups")  # every group of one is flat
            metrics.update(verified)
            trend = None
            if watching:  # proxy and gold of the same samples, and sqrt(KL): the axes of Gao et al.
                proxy, gold = proxy_and_gold(scores)
                metrics.update({"monitor/proxy": proxy, "monitor/gold": gold, "monitor/sqrt_kl": sqrt_kl(sequence_kl)})
                trend = monitor.observe(step, proxy, gold)
                if trend is not None:
                    metrics.update({"monitor/proxy_slope": trend.proxy_slope, "monitor/gold_slope": trend.gold_slope,
                                    "monitor/diverging": float(trend.diverging)})
            slow = {f"time/{k}": v for k, v in timing.items()}
            slow["time/step"] = time.perf_counter() - t_step  # the training step alone, evaluation excluded
            metrics.update(zip(slow, distributed.max_over_ranks(list(slow.values()), "reducing the timings")))
            metrics["dist/world_size"] = info.world_size
            diverging = trend is not None and trend.diverging
            stopping = diverging and cfg.monitor.action == "stop"
            save_now = step % cfg.save_every == 0 or step == cfg.steps or stopping
            if heldout and ((cfg.eval.every and step % cfg.eval.every == 0) or step == cfg.steps
                            or (watching and save_now)):  # every checkpoint gets a held-out gold score
                t0 = time.perf_counter()
                recorder = RecordingEngine(eval_engine)  # every rank records all samples (ShardedEngine gathers)
                metrics.update(evaluate_heldout(recorder, heldout, heldout_ids, eval_verifier, cfg, step, run_dir,
                                                heldout_fields, write=info.is_main))
                if models.reward_model is not None:
                    metrics["eval/rm_score"] = heldout_rm_score(models, recorder, cfg.optim.micro_batch_size)
                metrics["time/eval"] = time.perf_counter() - t0
                console.evaluation(step, metrics)
            if log is not None:
                log.log(step, metrics)
                log.samples(step, ppo_sample_rows(batch, scores, raw_advantages, sequence_kl, cfg.log_samples,
                                                  tokenizer, task))
            if save_now:  # the gold score of a checkpoint: held-out pass@1 where there is a held-out set
                if "eval/pass@1" in metrics:
                    save(step, metrics["eval/pass@1"], "held-out pass@1")
                else:
                    save(step, monitor.smoothed_gold(),
                         f"training accuracy, mean of the last {cfg.monitor.window} steps")
            bar.set_postfix(reward=f"{metrics['reward/mean']:.3f}", acc=f"{metrics['reward/accuracy']:.3f}")
            console.step(step, cfg.steps, metrics)

            # the reward-hacking monitor: gold falling while the proxy rises
            if diverging and not warned:
                best = read_best_gold(run_dir)
                mark = (f"the best gold score is at {run_dir / best.checkpoint} ({best.source} {best.score:.3f}; "
                        f"{run_dir / 'best_gold.json'})" if best is not None else "no checkpoint is marked yet")
                text = f"{trend.message(cfg.monitor.min_gold_drop)}; {mark}"
                if stopping:
                    if info.is_main:
                        write_plots(run_dir)
                        write_ppo_plots(run_dir)
                    raise RunStopped(
                        f"rlvr ppo: stopped by the reward-hacking monitor (monitor.action = stop) at {text}. To train "
                        "on regardless, start a new run from a checkpoint with monitor.action=warn", MONITOR_EXIT_CODE)
                distributed.print_main(f"rlvr: warning: reward-hacking monitor: {text}", file=sys.stderr, flush=True)
            warned = diverging
            # a signal that reached any rank stops every rank after the same step
            signalled = distributed.any_rank(stop.requested is not None, "agreeing whether to stop")
            if signalled:
                break
    except RunStopped:  # a NaN, or the monitor: the message says why and which checkpoint is intact
        if log is not None:
            log.close()
        raise
    except KeyboardInterrupt:  # a second Ctrl-C: stop now, mid-step; the newest checkpoint is intact
        bar.close()
        if log is not None:
            log.close()
        raise RunStopped(stopped_message(run_dir, step - 1, 'ppo'), 130) from None
    finally:
        bar.close()
        engine.close()  # a colocated vLLM frees its memory now, not at exit
    if log is not None:
        log.close()
        write_plots(run_dir)
        write_ppo_plots(run_dir)
    if signalled and step < cfg.steps:
        if saved_step < step:
            save(step, None, "")
        raise RunStopped(stopped_message(run_dir, step, 'ppo'), stop.exit_code)
    console.summary(run_dir, latest_checkpoint(run_dir))
    return run_dir
