"""The GRPO loop (DeepSeekMath, arXiv:2402.03300), read top to bottom.

Each step: sample G completions for each of ``prompts_per_step`` prompts, score
them with the task's verifier, turn rewards into group-normalised advantages,
take ``num_iterations`` clipped policy-gradient steps on that batch, and hand the
new weights to the rollout engine. DAPO (arXiv:2503.14476) and Dr. GRPO
(arXiv:2503.20783) are settings of the same loop (see ``AlgoConfig``).

Under ``torchrun`` every process runs this loop on its own share of the step's prompts (whole
groups, so group normalization needs no communication), with its own rollout engine; the loss
normalizers, advantages over the batch, gradients and metrics are reduced over ranks, so a step
equals that of one process with the whole batch, and rank 0 alone writes the run folder
(``grpo/distributed.py``). Every prompt is sampled with a seed of its own, a function of the run's
seed and its position in the prompt stream (``rollout.seeding``), so the samples do not depend on
the number of ranks.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
import yaml
from tqdm import tqdm

from grpo import distributed
from grpo.advantages import group_advantages, zero_variance_groups
from grpo.checkpoint import (latest_checkpoint, load_trainer_state, rng_state, save_checkpoint, save_sharded_checkpoint,
                             set_rng_state, sharded_state_of)
from grpo.config import ConfigError, RewardConfig, TrainConfig, dump_yaml, to_dict
from grpo.console import Console, engine_label
from grpo.engines.base import SEED_SPAN, RolloutEngine, SamplingParams, WeightSyncError
from grpo.engines.factory import build_engine, sync_weights
from grpo.errors import NonFiniteGradient
from grpo.eval import evaluate, write_reports
from grpo.logprobs import completion_logprobs, pack
from grpo.losses import policy_loss, truncated_importance_weights
from grpo.microbatch import activation_bytes_per_position, plan_micro_batches
from grpo.models import load_policy, peak_memory_metrics, reference_policy, setup_cpu
from grpo.optim import make_optimizer
from grpo.plots import write_plots
from grpo.precision import compute_dtype_of
from grpo.rewards import build_verifier, shape_verdicts
from grpo.runfolder import NAN_EXIT_CODE, RunLock, RunStopped, StopSignals, record_resume, resume_changes
from grpo.runlog import RunLog
from tasks import Task, TaskError, get_task
from verifiers import Verdict, VerifierSpec, get_verifier, verify_batch


@dataclass
class Rollout:
    """Samples of whole groups (G consecutive samples share a prompt), scored."""

    rows: list[Mapping[str, Any]] = field(default_factory=list)  # (B,) the task row of each sample
    prompt_ids: list[list[int]] = field(default_factory=list)  # (B, P_i)
    completion_ids: list[list[int]] = field(default_factory=list)  # (B, T_i)
    sampler_logprobs: list[list[float]] = field(default_factory=list)  # (B, T_i)
    texts: list[str] = field(default_factory=list)  # (B,)
    finish_reason: list[str] = field(default_factory=list)  # (B,)
    verdicts: list[Verdict] = field(default_factory=list)  # (B,)

    def __len__(self) -> int:
        return len(self.completion_ids)

    def take(self, indices: list[int]) -> "Rollout":
        return Rollout(*([getattr(self, f)[i] for i in indices] for f in self.__dataclass_fields__))

    def extend(self, other: "Rollout") -> None:
        for f in self.__dataclass_fields__:
            getattr(self, f).extend(getattr(other, f))


class PromptStream:
    """Training prompts in shuffled epochs; position ``i`` is a pure function of (seed, i), so resume is exact."""

    def __init__(self, size: int, seed: int):
        self.size, self.seed = size, seed
        self._epoch, self._order = -1, []

    def take(self, start: int, count: int) -> list[int]:
        out = []
        for i in range(start, start + count):
            epoch = i // self.size
            if epoch != self._epoch:
                self._order = list(range(self.size))
                random.Random(f"{self.seed}/{epoch}").shuffle(self._order)
                self._epoch = epoch
            out.append(self._order[i % self.size])
        return out


def prompt_seed(seed: int, position: int) -> int:
    """The sampling seed of the prompt at ``position`` of the prompt stream: a pure function of the run's
    seed and the position, so a prompt is sampled alike on any rank, with any number of ranks, and
    after a resume (``RolloutEngine.generate``: sample j of the prompt gets this seed + j)."""
    digest = hashlib.blake2b(f"{seed}/{position}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") % SEED_SPAN


def rewards_and_valid(verdicts: list[Verdict]) -> tuple[torch.Tensor, torch.Tensor]:
    """(B,) float rewards and (B,) bool: the verifier could judge the sample."""
    rewards = torch.tensor([v.reward for v in verdicts], dtype=torch.float)
    valid = torch.tensor([v.status != "unverifiable" for v in verdicts], dtype=torch.bool)
    return rewards, valid


def sample_and_verify(engine: RolloutEngine, rows: list[Mapping[str, Any]], prompt_ids: list[list[int]],
                      group_size: int, sampling: SamplingParams, verifier: VerifierSpec, reward: RewardConfig,
                      timing: dict[str, float], seeds: list[int] | None = None) -> Rollout:
    """G samples of each prompt (``seeds``: one per prompt, see ``prompt_seed``), judged by this process."""
    t0 = time.perf_counter()
    completions = engine.generate(prompt_ids, group_size, sampling, seeds=seeds)
    t1 = time.perf_counter()
    sample_rows = [rows[i] for i in completions.prompt_index]
    verdicts = verify_batch(verifier, completions.text, sample_rows, timeout_s=reward.timeout_s,
                            finish_reasons=completions.finish_reason)
    verdicts = shape_verdicts(verdicts, [len(t) for t in completions.token_ids], reward, sampling.max_new_tokens)
    t2 = time.perf_counter()
    timing["generate"] += t1 - t0
    timing["verify"] += t2 - t1
    return Rollout(
        rows=sample_rows,
        prompt_ids=[list(prompt_ids[i]) for i in completions.prompt_index],
        completion_ids=completions.token_ids,
        sampler_logprobs=completions.logprobs,
        texts=completions.text,
        finish_reason=completions.finish_reason,
        verdicts=verdicts,
    )


class FirstPassStats:
    """Token-weighted means of the loss metrics over the micro-batches of the first pass, which
    runs on the weights that sampled the batch (later iterations see a policy that moved)."""

    ROLLOUT_KEYS = ("logprob_diff", "tis_weight_mean", "tis_capped_frac")

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.tokens = 0.0
        self.ratio_max = 0.0

    def add(self, metrics: Mapping[str, float], loss: torch.Tensor, num_tokens: float, *, entropy: torch.Tensor,
            trainer_logprobs: torch.Tensor, sampler_logprobs: torch.Tensor, is_weights: torch.Tensor | None,
            mask: torch.Tensor, tis_cap: float) -> None:
        """One micro-batch: (b, T) tensors; ``num_tokens`` is the whole batch's loss normalizer."""
        w = metrics["num_tokens"]
        self.tokens += w
        with torch.no_grad():
            real = mask != 0
            tis = is_weights if is_weights is not None else torch.ones_like(sampler_logprobs)  # (b, T)
            extra = {
                "entropy": float(entropy[real].mean()) if real.any() else 0.0,
                # the agreement probe: sampler vs trainer on the weights that sampled this batch
                "logprob_diff": float((trainer_logprobs - sampler_logprobs)[real].abs().mean()) if real.any() else 0.0,
                "tis_weight_mean": float(tis[real].mean()) if real.any() else 1.0,
                "tis_capped_frac": float((tis[real] >= tis_cap).float().mean()) if real.any() else 0.0,
                "loss": float(loss) * num_tokens / max(w, 1.0),
            }
        for key, value in {**metrics, **extra}.items():
            if key not in ("num_tokens", "ratio_max"):
                self.sums[key] = self.sums.get(key, 0.0) + value * w
        self.ratio_max = max(self.ratio_max, metrics["ratio_max"])

    def merge_ranks(self) -> None:
        """Sums and maxima over every rank's micro-batches: each rank then holds the whole batch's metrics."""
        parts = distributed.gather_objects((self.sums, self.tokens, self.ratio_max), "reducing the loss metrics")
        if len(parts) == 1:
            return
        sums: dict[str, float] = {}
        for part, _, _ in parts:
            for key, value in part.items():
                sums[key] = sums.get(key, 0.0) + value
        self.sums = sums
        self.tokens = sum(tokens for _, tokens, _ in parts)
        self.ratio_max = max(ratio_max for _, _, ratio_max in parts)

    def mean(self, key: str) -> float:
        return self.sums.get(key, 0.0) / max(self.tokens, 1.0)

    def metrics(self, num_tokens: float) -> dict[str, float]:
        out = {f"{'rollout' if k in self.ROLLOUT_KEYS else 'loss'}/{k}": self.mean(k) for k in self.sums}
        out["loss/ratio_max"] = self.ratio_max
        out["loss/loss"] = self.sums.get("loss", 0.0) / max(num_tokens, 1.0)
        return out


def policy_update(model: torch.nn.Module, ref_model: torch.nn.Module | None, batch: Rollout,
                  advantages: torch.Tensor, sample_weight: torch.Tensor, cfg: TrainConfig, pad_id: int,
                  optimizer: torch.optim.Optimizer, scheduler,
                  max_logprob_diff: float | None = None, timing: dict[str, float] | None = None) -> dict[str, float]:
    """``num_iterations`` optimizer steps on one batch, micro-batched; returns token-weighted metrics.

    ``timing`` receives the seconds of each part: ``reference`` (the reference policy's log-probs),
    ``logprobs`` (the policy's forward passes and the loss), ``backward``, ``optimizer`` (clipping and step).

    With ``max_logprob_diff``, raises ``WeightSyncError`` before the first optimizer step when the
    sampler's log-probs differ from the trainer's by more than that (see ``check_logprob_agreement``).

    Over several ranks (``model`` wrapped by ``grpo.distributed.wrap_policy``), ``batch`` is this
    rank's share: the normalizers count every rank's tokens, gradients are summed over ranks, so the
    step is that of one process with the whole batch; a rank with fewer micro-batches runs empty
    ones, because every forward and backward of a sharded model is a collective.
    """
    algo, temperature, share = cfg.algo, cfg.rollout.temperature, cfg.model.share_prompts
    device = torch.device(distributed.current().device)
    B = len(batch)
    if B:
        full = pack(batch.prompt_ids, batch.completion_ids, pad_id)
        mask = full.completion_mask * sample_weight[:, None]  # (B, T) masked-out samples drop from the loss
    else:
        mask = torch.zeros((0, 1))
    # the whole batch's normalizers (every rank's): micro-batches of all ranks sum to the batch loss
    num_seqs, num_tokens = distributed.loss_normalizers_over_ranks(mask)
    sampler_logprobs = torch.zeros(mask.shape)  # (B, T) the rollout engine's log-probs of the sampled tokens
    for i, lp in enumerate(batch.sampler_logprobs):
        sampler_logprobs[i, : len(lp)] = torch.tensor(lp)
    micro_batches = plan_micro_batches(batch.prompt_ids, batch.completion_ids, cfg.optim.micro_batch_size,
                                       _position_budget(model, cfg))
    micro_batches += [[]] * (int(distributed.max_over_ranks([len(micro_batches)])[0]) - len(micro_batches))
    micro_packs = [pack([batch.prompt_ids[i] for i in idx], [batch.completion_ids[i] for i in idx], pad_id).to(device)
                   if idx else pack([[pad_id]], [[pad_id]], pad_id).to(device)  # an empty micro-batch: mask 0
                   for idx in micro_batches]  # packed once, reused by the reference and every iteration
    mask, sampler_logprobs, advantages = mask.to(device), sampler_logprobs.to(device), advantages.to(device)

    seconds = dict.fromkeys(("reference", "logprobs", "backward", "optimizer"), 0.0)
    t0 = time.perf_counter()
    ref_logprobs: list[torch.Tensor | None] = [None] * len(micro_batches)
    if ref_model is not None:
        with torch.no_grad():
            ref_logprobs = [completion_logprobs(ref_model, mb, temperature, share_prompts=share)[0]
                            for mb in micro_packs]
    seconds["reference"] = time.perf_counter() - t0

    stats = FirstPassStats()
    grad_norms = []
    trainer_old: list[torch.Tensor] = []  # (b, Tm) per micro-batch: pi_old as the trainer computes it (iteration 0)
    for iteration in range(algo.num_iterations):
        first_pass = iteration == 0
        optimizer.zero_grad(set_to_none=True)
        for m, (idx, mb) in enumerate(zip(micro_batches, micro_packs)):
            Tm = mb.completion_ids.shape[1]
            # DDP: gradients are summed over ranks once per optimizer step, after the last micro-batch
            with distributed.gradient_sync(model, m == len(micro_batches) - 1):
                t0 = time.perf_counter()
                logprobs, entropy = completion_logprobs(model, mb, temperature, with_entropy=first_pass,
                                                        share_prompts=share)  # (b, Tm)
                mb_mask = mask[idx, :Tm] if idx else torch.zeros_like(logprobs)
                mb_sampler = sampler_logprobs[idx, :Tm] if idx else torch.zeros_like(logprobs)  # (b, Tm)
                mb_advantages = advantages[idx] if idx else torch.zeros(1, device=device)
                if first_pass:
                    trainer_old.append(logprobs.detach())
                if algo.tis:  # PPO ratio against the trainer's pi_old; each token weighted by min(pi_old / pi_sampler, cap)
                    old = trainer_old[m]
                    is_weights = truncated_importance_weights(trainer_old[m], mb_sampler, algo.tis_cap)
                else:  # PPO ratio against the sampler's log-probs
                    old, is_weights = mb_sampler, None
                loss, metrics = policy_loss(
                    logprobs, old, mb_advantages, mb_mask,
                    clip_eps_low=algo.clip_eps_low, clip_eps_high=algo.clip_eps_high,
                    loss_agg_mode=algo.loss_agg_mode, kl_coef=algo.kl_coef, ref_logprobs=ref_logprobs[m],
                    num_seqs=num_seqs, num_tokens=num_tokens,
                    norm_constant=float(algo.loss_norm_constant or cfg.rollout.max_new_tokens),
                    is_weights=is_weights,
                )
                t1 = time.perf_counter()
                loss.backward()
                seconds["logprobs"] += t1 - t0
                seconds["backward"] += time.perf_counter() - t1
            if first_pass and idx:
                stats.add(metrics, loss, num_tokens, entropy=entropy, trainer_logprobs=trainer_old[m],
                          sampler_logprobs=mb_sampler, is_weights=is_weights, mask=mb_mask, tis_cap=algo.tis_cap)
        if first_pass:
            stats.merge_ranks()  # every rank decides the probe on the whole batch, so all stop or none
            if max_logprob_diff is not None:
                check_logprob_agreement(stats.mean("logprob_diff"), max_logprob_diff)
        t0 = time.perf_counter()
        max_norm = cfg.optim.max_grad_norm or float("inf")
        grad_norm = distributed.to_float(torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm))
        if not math.isfinite(grad_norm):  # the same on every rank (gradients are summed first): all stop
            raise NonFiniteGradient(f"the gradient norm is {grad_norm}")
        grad_norms.append(grad_norm)
        optimizer.step()
        scheduler.step()
        seconds["optimizer"] += time.perf_counter() - t0
    if timing is not None:
        timing.update(seconds)
    out = stats.metrics(num_tokens)
    out["optim/grad_norm"] = float(np.mean(grad_norms))
    out["optim/lr"] = scheduler.get_last_lr()[0]
    return out


def _position_budget(model: torch.nn.Module, cfg: TrainConfig) -> float | None:
    """Positions per micro-batch that ``optim.micro_batch_memory_gb`` allows (None: no budget)."""
    if cfg.optim.micro_batch_memory_gb <= 0:
        return None
    per_position = activation_bytes_per_position(distributed.unwrap(model), cfg.model.gradient_checkpointing)
    return None if per_position is None else cfg.optim.micro_batch_memory_gb * 2**30 / per_position


def check_logprob_agreement(logprob_diff: float, limit: float) -> None:
    """Stop, before the update, when the sampler's log-probs are not the trainer's (a broken weight sync)."""
    if logprob_diff > limit:
        raise WeightSyncError(
            f"the rollout engine's log-probs of the sampled tokens differ from the trainer's by {logprob_diff:.4f} "
            f"nats per token on average (rollout.max_logprob_diff = {limit}): the engine is not sampling from the "
            "trainer's weights. After step 1 this means the last weight sync failed or left stale weights; at "
            "step 1, that the engine loaded another model or dtype. Stopped before the update; the newest "
            "checkpoint is intact. (For bf16 policies raise rollout.max_logprob_diff if this trips with a sound sync.)"
        )


def evaluate_heldout(engine: RolloutEngine, rows: list[Mapping[str, Any]], prompt_ids: list[list[int]],
                     verifier: VerifierSpec, cfg: TrainConfig, step: int, run_dir: Path,
                     problem_fields: list[dict[str, Any]] | None = None, write: bool = True) -> dict[str, float]:
    """Held-out pass@k with eval's own sampling settings; reports go to ``run_dir/eval/step-N/``
    (unless ``write`` is false: the ranks other than 0 of a run of several processes).

    Sampling runs on a forked RNG seeded by (seed, step): evaluating never changes what
    training samples next, and the same step of a resumed run evaluates the same way.
    """
    settings = cfg.eval
    sampling = settings.sampling_with(cfg.rollout)
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(cfg.seed * 1_000_003 + step)
        result = evaluate(engine, prompt_ids, rows, verifier, n=settings.n, ks=settings.ks, sampling=sampling,
                          timeout_s=cfg.reward.timeout_s, bootstrap=settings.bootstrap, seed=cfg.seed + step)
    meta = {"step": step, "task": cfg.task, "split": settings.split, "model": str(run_dir), "ks": list(settings.ks),
            "seed": cfg.seed + step, "bootstrap": settings.bootstrap,
            "sampling": {**dataclasses.asdict(sampling), "stop": list(sampling.stop)}}
    if write:
        write_reports(result, run_dir / "eval" / f"step-{step}", meta, problem_fields)
    return {f"eval/{k}": v for k, v in result.summary().items()}


def prepare_task(cfg: TrainConfig) -> tuple[Task, VerifierSpec, VerifierSpec, list[dict[str, Any]], list[dict[str, Any]]]:
    """The task, the training verifier (with reward shaping), the held-out verifier, and the train and
    held-out rows, all checked against each other: anything wrong fails here, before a file is written."""
    task = get_task(cfg.task)
    try:
        verifier = build_verifier(cfg.reward, cfg.verifier, task.verifier)
        eval_verifier = get_verifier(cfg.verifier or task.verifier)  # held-out correctness, without reward shaping
    except ValueError as exc:
        field = "reward.verifiers" if cfg.reward.verifiers else "verifier" if cfg.verifier else "task"
        raise ConfigError(f"config field '{field}': {exc}") from exc
    train_rows = task.rows("train")
    if not train_rows:
        raise ConfigError(f"task {task.name!r} has no training rows (split 'train' is empty)")
    heldout = task.rows(cfg.eval.split, cfg.eval.problems) if cfg.eval.problems else []
    for spec in (verifier, eval_verifier):
        check_rows_for(spec, task, train_rows[0], "train")
    return task, verifier, eval_verifier, train_rows, heldout


def check_rows_for(spec: VerifierSpec, task: Task, row: Mapping[str, Any], split: str) -> None:
    """Stop at load when the task's rows lack a field the verifier reads (every sample would be unverifiable)."""
    missing = [f for f in spec.required_fields() if f not in row]
    if missing:
        raise TaskError(
            f"task {task.name!r} ({task.source}): verifier {spec.name!r} reads the field {missing[0]!r}, which rows "
            f"of split {split!r} lack; their fields: {', '.join(sorted(row))}. Name the row field that holds the "
            f"gold answer with answer_field in the task YAML (e.g. answer_field: {sorted(row)[-1]}), or use "
            "another verifier")


UNVERIFIABLE_STEPS_TO_STOP = 3  # whole steps in a row that the verifier could not judge at all


def resume_point(run_dir: Path, resume: bool, resolved: dict[str, Any]) -> tuple[Path | None, dict[str, tuple[Any, Any]]]:
    """``(newest checkpoint or None, {field: (saved, new)} the resume changes)`` of a run about to start,
    checked: ``--resume`` needs a complete checkpoint, a fresh start an unused folder. How the run is
    spread over processes may change on a resume (``distributed.LAUNCH_FIELDS``); what it learns may
    not (``resume_changes`` refuses it). ``resolved``: the new config as a dict."""
    checkpoint = latest_checkpoint(run_dir) if resume else None
    if resume and checkpoint is None:
        raise ConfigError(f"--resume: {run_dir}/checkpoints holds no complete checkpoint; start without --resume")
    if not resume and (run_dir / "metrics.jsonl").is_file() and (run_dir / "metrics.jsonl").stat().st_size > 0:
        raise ConfigError(f"output_dir {str(run_dir)!r} already holds a run; pass --resume to continue it, "
                          "or choose another --output-dir")
    if not resume:
        return None, {}
    saved = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
    launch = distributed.adopt_launch_settings(saved, resolved)
    return checkpoint, {**resume_changes(yaml.safe_dump(saved, sort_keys=False), resolved), **launch}


def train(cfg: TrainConfig, resume: bool = False, show_progress: bool = True) -> Path:
    """Run GRPO as configured; returns the run folder.

    Raises ``RunStopped`` (after saving a checkpoint when a step completed since the last one) on
    SIGINT / SIGTERM, or when the verifier could judge nothing for several steps; under torchrun
    also when another rank died or stopped answering (exit 4, every rank).
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
        sharded_state = sharded_state_of(checkpoint) if checkpoint is not None else None  # checked before loading

        # task, verifier, policy, reference: everything that can fail on bad input, before a file is written
        task, verifier, eval_verifier, train_rows, heldout = prepare_task(cfg)
        if (note := verifier.deadline_note()) is not None and info.is_main:
            print(f"rlvr: warning: {note}", file=sys.stderr)
        random.seed(cfg.seed)
        np.random.seed(cfg.seed)
        torch.manual_seed(cfg.seed)
        policy_cfg = cfg.model if checkpoint is None else dataclasses.replace(cfg.model, path=str(checkpoint))
        model, tokenizer = load_policy(policy_cfg)
        model.train()
        # the frozen reference, only when the KL term is on: with LoRA, the policy with its adapters disabled
        ref_model = reference_policy(model, cfg.model) if cfg.algo.kl_coef > 0 else None
        d = cfg.dist
        train_model = distributed.wrap_policy(model, d.sharding, d.mixed_precision, d.cpu_offload)
        if isinstance(ref_model, torch.nn.Module):  # a second copy (LoRA's reference is the policy module itself)
            ref_model = distributed.wrap_policy(ref_model, d.sharding, d.mixed_precision, d.cpu_offload,
                                                trainable=False)
        distributed.barrier("starting the run")  # every rank passed the checks before rank 0 writes anything

        with StopSignals() as stop:
            start_run_folder(run_dir, lock, cfg, checkpoint, changes)
            try:
                run = _train_loop(cfg, run_dir, checkpoint, sharded_state, task, verifier, eval_verifier, train_rows,
                                  heldout, train_model, ref_model, tokenizer, policy_cfg, stop, show_progress)
            except Exception as exc:  # a rank died or hangs: every rank stops, saying so (not a traceback)
                lost = distributed.as_peer_lost(exc)
                if lost is None:
                    raise
                raise RunStopped(f"rlvr train: error: {lost}. {continue_note(run_dir)}", 4) from None
            distributed.shutdown()
            return run
    finally:
        lock.release()


def _train_loop(cfg: TrainConfig, run_dir: Path, checkpoint: Path | None, sharded_state: Path | None, task: Task,
                verifier: VerifierSpec, eval_verifier: VerifierSpec, train_rows: list[dict[str, Any]],
                heldout: list[dict[str, Any]], model: torch.nn.Module, ref_model: torch.nn.Module | None, tokenizer,
                policy_cfg, stop: StopSignals, show_progress: bool) -> Path:
    info = distributed.current()
    policy = distributed.unwrap(model)  # the Hugging Face model (the same module under FSDP)
    # engine, optimizer, trainer state
    stream = PromptStream(len(train_rows), cfg.seed)
    prompt_cache: dict[int, list[int]] = {}
    heldout_ids = [task.encode(r, tokenizer) for r in heldout]
    heldout_fields = [{"id": task.problem_id(r, i), "prompt": task.prompt(r, tokenizer),
                       **({"answer": r["answer"]} if "answer" in r else {})} for i, r in enumerate(heldout)]
    engine = build_engine(cfg.rollout, policy_cfg, tokenizer, model=policy, seed=cfg.seed)
    optimizer, scheduler = make_optimizer(
        model, cfg.optim.lr, cfg.optim.weight_decay, (cfg.optim.beta1, cfg.optim.beta2),
        cfg.optim.schedule, cfg.optim.warmup_steps, cfg.steps * cfg.algo.num_iterations,
    )
    start_step, prompts_consumed = 0, 0
    if checkpoint is not None:
        state = load_trainer_state(checkpoint)
        if sharded_state is not None:  # written by several processes: resharded to this run's
            distributed.load_sharded_state(sharded_state, model, optimizer)
        elif info.is_distributed:  # a one-process checkpoint: its optimizer state, sharded like this run
            distributed.load_full_optimizer_state(model, optimizer, state["optimizer"])
        else:
            optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"])
        start_step, prompts_consumed = state["step"], state["prompts_consumed"]
    log = None
    if info.is_main:
        log = RunLog(run_dir, resume_step=start_step if checkpoint is not None else None,
                     tensorboard="tensorboard" in cfg.report_to,
                     wandb_config=to_dict(cfg) if "wandb" in cfg.report_to else None)
    algo, rollout = cfg.algo, cfg.rollout
    sampling = rollout.sampling()
    G, P = algo.group_size, algo.prompts_per_step
    # the agreement probe compares full-softmax log-probs; top-k / top-p samplers report truncated ones
    probe_limit = rollout.max_logprob_diff if rollout.top_k == 0 and rollout.top_p == 1.0 else None
    # seeds per prompt make the samples independent of the number of ranks (and of which rank samples what)
    per_prompt = rollout.seeding == "per_prompt" or (rollout.seeding == "auto" and info.is_distributed)
    # held-out samples: split over ranks, seeded per problem (so evaluation, too, is the same on any number of ranks)
    eval_engine = distributed.ShardedEngine(engine) if per_prompt else engine
    console = Console(show_progress and info.is_main, out=None if info.is_main else open(os.devnull, "w"))
    console.banner(cfg, task, engine_label(engine), len(train_rows), len(heldout), start_step, checkpoint,
                   compute_dtype_of(policy))

    saved_step = start_step
    unverifiable_streak = 0
    step = start_step
    stopping = False

    def save(at_step: int) -> None:
        nonlocal saved_step
        state = {"step": at_step, "prompts_consumed": prompts_consumed, "scheduler": scheduler.state_dict(),
                 "rng": rng_state()}
        if info.is_distributed:  # the optimizer state goes into the shards
            save_sharded_checkpoint(run_dir, at_step, model, optimizer, tokenizer, state, keep=cfg.keep_checkpoints,
                                    sharding=cfg.dist.sharding)
        else:
            save_checkpoint(run_dir, at_step, policy, tokenizer, {**state, "optimizer": optimizer.state_dict()},
                            keep=cfg.keep_checkpoints)
        saved_step = at_step

    bar = tqdm(range(start_step + 1, cfg.steps + 1), desc="grpo", disable=not (show_progress and info.is_main),
               dynamic_ncols=True, initial=start_step, total=cfg.steps)
    try:
        for step in bar:
            t_step = time.perf_counter()
            timing = {"generate": 0.0, "verify": 0.0, "update": 0.0, "sync": 0.0}

            # 1. sample and 2. verify (dynamic sampling keeps only groups with a learning signal); each rank
            # takes its contiguous share of the round's prompts, each prompt seeded by its stream position
            sampled, batch = Rollout(), Rollout()
            rounds = groups_kept = 0
            while groups_kept < P and rounds < (algo.max_sampling_rounds if algo.dynamic_sampling else 1):
                rounds += 1
                need = P - groups_kept
                indices = stream.take(prompts_consumed, need)
                lo, hi = distributed.shard_range(need, info.rank, info.world_size)
                seeds = [prompt_seed(cfg.seed, prompts_consumed + k) for k in range(lo, hi)] if per_prompt else None
                indices = indices[lo:hi]
                prompts_consumed += need
                for i in indices:
                    if i not in prompt_cache:
                        prompt_cache[i] = task.encode(train_rows[i], tokenizer)
                rollout_batch = sample_and_verify(engine, [train_rows[i] for i in indices],
                                                  [prompt_cache[i] for i in indices], G, sampling, verifier,
                                                  cfg.reward, timing, seeds=seeds)
                sampled.extend(rollout_batch)
                keep = range(len(indices))
                if algo.dynamic_sampling:
                    rewards, valid = rewards_and_valid(rollout_batch.verdicts)
                    keep = [g for g, flat in enumerate(zero_variance_groups(rewards, G, valid).tolist()) if not flat]
                batch.extend(rollout_batch.take([g * G + j for g in keep for j in range(G)]))
                groups_kept += int(distributed.sum_over_ranks([len(keep)], "counting the groups kept")[0])

            # 3. advantages, over the whole batch (every rank's rewards: exact for std_scope=batch too)
            rewards, valid = rewards_and_valid(batch.verdicts)  # (B,) each
            if not algo.mask_unverifiable:
                valid = torch.ones_like(valid)
            parts = distributed.gather_objects((rewards.tolist(), valid.tolist()), "gathering the rewards")
            offset = sum(len(r) for r, _ in parts[: info.rank])
            total = sum(len(r) for r, _ in parts)
            advantages = group_advantages(torch.tensor([x for r, _ in parts for x in r], dtype=rewards.dtype), G,
                                          std_scaling=algo.std_scaling, std_scope=algo.std_scope,
                                          valid=torch.tensor([x for _, v in parts for x in v], dtype=torch.bool),
                                          )[offset : offset + len(batch)]
            sample_weight = valid.float()
            if algo.mask_truncated:
                sample_weight *= torch.tensor([f != "length" for f in batch.finish_reason], dtype=torch.float)

            # 4. update
            t0 = time.perf_counter()
            update_metrics: dict[str, float] = {}
            if total > 0:
                try:
                    update_metrics = policy_update(model, ref_model, batch, advantages, sample_weight, cfg,
                                                   tokenizer.pad_token_id, optimizer, scheduler,
                                                   max_logprob_diff=probe_limit, timing=timing)
                except NonFiniteGradient as exc:
                    raise RunStopped(
                        f"rlvr train: error: step {step}: {exc} (a NaN or infinite loss), so the run stopped before "
                        f"the optimizer step that would have used it; this step's update is not saved. "
                        f"{continue_note(run_dir)}. Usual causes: too high a learning rate (lower optim.lr, keep "
                        "optim.max_grad_norm set), or rewards that are not numbers (check the verifier)",
                        NAN_EXIT_CODE) from None
            timing["update"] = time.perf_counter() - t0

            # 5. sync (grpo.engines.factory.sync_weights): merged LoRA, plain names, one layer at a time over
            # ranks; the next step's update checks that the engine samples with these weights
            t0 = time.perf_counter()
            sync_weights(engine, model)
            timing["sync"] = time.perf_counter() - t0

            # log, evaluate, checkpoint (every rank's samples; the slowest rank's times)
            everyone = distributed.gather_objects(
                (sampled.verdicts, [len(c) for c in sampled.completion_ids], sampled.finish_reason),
                "gathering the step's verdicts")
            all_verdicts = [v for part in everyone for v in part[0]]
            metrics = verdict_metrics(all_verdicts, [n for part in everyone for n in part[1]],
                                      [f for part in everyone for f in part[2]], G, rounds, total // G)
            metrics.update(update_metrics)
            metrics["time/step"] = time.perf_counter() - t_step  # the training step alone, evaluation excluded
            slow = {f"time/{k}": v for k, v in timing.items()} | {"time/step": metrics["time/step"]}
            slow.update(peak_memory_metrics())
            metrics.update(zip(slow, distributed.max_over_ranks(list(slow.values()), "reducing the timings")))
            metrics["dist/world_size"] = info.world_size
            if heldout and ((cfg.eval.every and step % cfg.eval.every == 0) or step == cfg.steps):
                t0 = time.perf_counter()
                metrics.update(evaluate_heldout(eval_engine, heldout, heldout_ids, eval_verifier, cfg, step, run_dir,
                                                heldout_fields, write=info.is_main))
                metrics["time/eval"] = time.perf_counter() - t0
                console.evaluation(step, metrics)
            rows = sample_rows(batch, advantages, cfg.log_samples, tokenizer, task, G, offset=offset, total=total)
            rows = [row for part in distributed.gather_objects(rows, "gathering the logged samples") for row in part]
            if log is not None:
                log.log(step, metrics)
                log.samples(step, rows)
            if step % cfg.save_every == 0 or step == cfg.steps:
                save(step)
            bar.set_postfix(reward=f"{metrics['reward/mean']:.3f}", acc=f"{metrics['reward/accuracy']:.3f}")
            console.step(step, cfg.steps, metrics)

            # a run that cannot learn says so instead of finishing quietly
            if metrics["reward/unverifiable_rate"] >= 1.0:
                unverifiable_streak += 1
                first = next(v.reason for v in all_verdicts if v.status == "unverifiable")
                if info.is_main:
                    print(f"rlvr: warning: step {step}: the verifier could judge none of the {len(all_verdicts)} "
                          f"samples, so nothing is learned; first reason: {first}", file=sys.stderr, flush=True)
                if unverifiable_streak >= UNVERIFIABLE_STEPS_TO_STOP:
                    raise RunStopped(
                        f"rlvr train: error: the verifier could judge no sample in {unverifiable_streak} steps in a "
                        f"row (first reason: {first}); stopped at step {step}. Check the verifier with rlvr verify "
                        "on a few rows of the task, and that the task's rows carry the fields it reads", 2)
            else:
                unverifiable_streak = 0
            # a signal that reached any rank stops every rank after the same step
            stopping = distributed.any_rank(stop.requested is not None, "agreeing whether to stop")
            if stopping:
                break
    except KeyboardInterrupt:  # a second Ctrl-C: stop now, mid-step; the newest checkpoint is intact
        bar.close()
        if log is not None:
            log.close()
        raise RunStopped(stopped_message(run_dir, step - 1), 130) from None
    finally:
        bar.close()
        engine.close()  # a colocated vLLM frees its memory now, not at exit
    if log is not None:
        log.close()
        write_plots(run_dir)
    if stopping and step < cfg.steps:
        if saved_step < step:
            save(step)
        raise RunStopped(stopped_message(run_dir, step), stop.exit_code)
    console.summary(run_dir, latest_checkpoint(run_dir))
    return run_dir


def start_run_folder(run_dir: Path, lock: RunLock, cfg: Any, checkpoint: Path | None,
                     changes: dict[str, tuple[Any, Any]]) -> None:
    """Rank 0, once every rank passed its checks: hold the run folder's lock, write the resolved config,
    and record what a resume changed (``resume_point``). Other ranks write nothing."""
    if not distributed.current().is_main:
        return
    if not lock.held:
        lock.acquire()
    (run_dir / "config.yaml").write_text(dump_yaml(cfg))
    if changes:
        record_resume(run_dir, int(load_trainer_state(checkpoint)["step"]), changes)


def resume_command(run_dir: Path, command: str) -> str:
    """The command line that continues the run in ``run_dir`` (with torchrun over several processes)."""
    return f"{distributed.world_size_note()} {command} --config {run_dir}/config.yaml --resume"


def continue_note(run_dir: Path, command: str = "train") -> str:
    """Where the run stands and the command that continues it."""
    newest = latest_checkpoint(run_dir)
    if newest is None:
        return "No checkpoint yet: start it again"
    return f"Newest checkpoint {newest}; continue with: {resume_command(run_dir, command)}"


def stopped_message(run_dir: Path, step: int, command: str = "train") -> str:
    newest = latest_checkpoint(run_dir)
    where = f"newest checkpoint {newest}" if newest is not None else "no checkpoint yet"
    again = resume_command(run_dir, command) if newest is not None else "start it again"
    return f"rlvr {command}: stopped after step {step}; {where}; continue with: {again}"


def step_metrics(sampled: Rollout, group_size: int, rounds: int, groups_in_batch: int) -> dict[str, float]:
    """Reward, accuracy and length statistics over everything sampled this step."""
    return verdict_metrics(sampled.verdicts, [len(c) for c in sampled.completion_ids], sampled.finish_reason,
                           group_size, rounds, groups_in_batch)


def verdict_metrics(verdicts: list[Verdict], lengths: list[int], finish_reasons: list[str], group_size: int,
                    rounds: int, groups_in_batch: int) -> dict[str, float]:
    """``step_metrics`` from the samples' verdicts, completion lengths and finish reasons (whole groups,
    group-major; over several ranks, every rank's in rank order)."""
    rewards, valid = rewards_and_valid(verdicts)
    statuses = [v.status for v in verdicts]
    lengths_t = torch.tensor(lengths, dtype=torch.float)
    n = max(1, len(verdicts))
    return {
        "reward/mean": float(rewards.mean()),
        "reward/std": float(rewards.std()) if len(rewards) > 1 else 0.0,
        "reward/accuracy": statuses.count("correct") / n,
        "reward/unverifiable_rate": statuses.count("unverifiable") / n,
        "reward/zero_variance_groups": float(zero_variance_groups(rewards, group_size, valid).float().mean()),
        "completion/length_mean": float(lengths_t.mean()),
        "completion/length_max": float(lengths_t.max()),
        "completion/truncation_rate": finish_reasons.count("length") / n,
        "batch/sampling_rounds": rounds,
        "batch/groups": groups_in_batch,
    }


def sample_rows(batch: Rollout, advantages: torch.Tensor, count: int, tokenizer, task: Task,
                group_size: int, offset: int = 0, total: int | None = None) -> list[dict[str, Any]]:
    """``count`` samples for samples.jsonl, spread over the batch's groups (one per group first).

    Over several ranks, ``batch`` holds samples ``offset ..`` of a batch of ``total``: the picks are
    made on the whole batch, and this rank renders those it holds (``group`` counts whole-batch groups).
    """
    B = len(batch)
    total = B if total is None else total
    groups = max(1, total // max(1, group_size))
    order = [g * group_size + j for j in range(group_size) for g in range(groups)]  # round-robin over groups
    picked = sorted(i - offset for i in order[: min(count, total)] if offset <= i < offset + B)
    return [
        {
            "prompt": tokenizer.decode(batch.prompt_ids[i], skip_special_tokens=True),
            "completion": batch.texts[i],
            "answer": batch.rows[i].get(task.answer_field),
            "reward": batch.verdicts[i].reward,
            "status": batch.verdicts[i].status,
            "reason": batch.verdicts[i].reason,
            "finish_reason": batch.finish_reason[i],
            "advantage": float(advantages[i]),
            "group": (offset + i) // max(1, group_size),
        }
        for i in picked
    ]
