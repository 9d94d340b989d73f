"""``rlvr dpo``: direct preference optimization on preference pairs, the offline baseline.

DPO (Rafailov et al. 2023, arXiv:2305.18290) trains the policy directly on
(prompt, chosen, rejected) pairs: with ``r = beta * (log pi(y|x) - log
pi_ref(y|x))`` the loss is ``-log sigmoid(r_chosen - r_rejected)``
(``grpo.rlhf_losses.dpo_loss``). The reference is the starting policy. By
default its log-probs of every pair are computed once, before the first update
(``reference: precomputed``), so only one model is ever in memory; ``reference:
model`` keeps a frozen copy instead.

A known failure: the log-probs of both the chosen and the rejected completions
fall while their gap grows, i.e. the policy moves probability to text that is
in neither. The change of each against the reference is logged every step
(``dpo/logps_chosen_change``, ``dpo/logps_rejected_change``), and a warning is
printed when both fell over a window of ``falling_window`` steps.

The run folder is a causal LM run like ``rlvr sft``'s: ``checkpoints/step-N`` are
Hugging Face model folders, so ``rlvr eval --model RUN`` evaluates the result.
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path
from typing import Sequence

import torch
from tqdm import tqdm

from grpo.checkpoint import rng_state, save_checkpoint
from grpo.config import DPOConfig, dump_yaml
from grpo.logprobs import completion_logprobs, pack
from grpo.models import load_policy, setup_cpu
from grpo.optim import make_optimizer
from grpo.pair_data import BatchOrder, PairData, TokenPair, chunks, load_pair_data, refuse_existing_run
from grpo.rlhf_losses import dpo_loss
from grpo.runfolder import RunLock
from grpo.runlog import RunLog


def sequence_logps(model: torch.nn.Module, pairs: Sequence[TokenPair], pad_id: int,
                   share_prompts: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """(b,) ``log pi(chosen | prompt)`` and (b,) ``log pi(rejected | prompt)``: sums over the
    completion tokens, from one forward pass over the 2b sequences (with grad if enabled)."""
    b = len(pairs)
    prompts = [p.prompt_ids for p in pairs] * 2
    completions = [p.chosen_ids for p in pairs] + [p.rejected_ids for p in pairs]
    packed = pack(prompts, completions, pad_id).to(next(model.parameters()).device)
    logprobs, _ = completion_logprobs(model, packed, share_prompts=share_prompts)  # (2b, T)
    sums = (logprobs * packed.completion_mask).sum(-1)  # (2b,)
    return sums[:b], sums[b:]


@torch.no_grad()
def all_sequence_logps(model: torch.nn.Module, pairs: Sequence[TokenPair], pad_id: int,
                       batch_size: int, share_prompts: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """(N,) chosen and (N,) rejected log-probs of every pair, without grad, in eval mode."""
    was_training = model.training
    model.eval()
    try:
        parts = [sequence_logps(model, part, pad_id, share_prompts) for part in chunks(pairs, batch_size)]
    finally:
        model.train(was_training)
    return torch.cat([c.cpu() for c, _ in parts]), torch.cat([r.cpu() for _, r in parts])


def falling_together(chosen_change: Sequence[float], rejected_change: Sequence[float],
                     window: int) -> tuple[float, float] | None:
    """At the end of each full window: did the log-probs of both chosen and rejected fall?

    Args:
        chosen_change: per step so far, the batch mean of ``log pi(chosen) - log pi_ref(chosen)``.
        rejected_change: likewise for the rejected completions.
        window: steps per window.

    Returns:
        When ``len(chosen_change)`` ends a window and the window's mean of both fell below the
        previous window's (for the first window: below 0, the reference itself), the two falls
        ``(chosen, rejected)`` in nats (negative); otherwise None.
    """
    if len(chosen_change) != len(rejected_change):
        raise ValueError("chosen_change and rejected_change must have one value per step")
    n = len(chosen_change)
    if window < 1 or n == 0 or n % window:
        return None

    def fall(values: Sequence[float]) -> float:
        current = sum(values[n - window :]) / window
        previous = sum(values[n - 2 * window : n - window]) / window if n >= 2 * window else 0.0
        return current - previous

    chosen, rejected = fall(chosen_change), fall(rejected_change)
    return (chosen, rejected) if chosen < 0 and rejected < 0 else None


def heldout_metrics(model, pairs: Sequence[TokenPair], ref: tuple[torch.Tensor, torch.Tensor], pad_id: int,
                    cfg: DPOConfig) -> dict[str, float]:
    """DPO loss and implicit-reward metrics on held-out pairs (``ref``: their (N,) reference log-probs)."""
    chosen, rejected = all_sequence_logps(model, pairs, pad_id, cfg.optim.micro_batch_size, cfg.model.share_prompts)
    loss, m = dpo_loss(chosen, rejected, *ref, beta=cfg.beta, label_smoothing=cfg.label_smoothing)
    m.pop("num_pairs")
    m["loss"] = float(loss)
    m["logps_chosen_change"] = float((chosen - ref[0]).mean())
    m["logps_rejected_change"] = float((rejected - ref[1]).mean())
    return m


def train_dpo(cfg: DPOConfig, show_progress: bool = True) -> Path:
    """Run DPO as configured; returns the final checkpoint (a causal LM folder).

    Everything that can be wrong with the input is checked before the first file is written.
    """
    setup_cpu(cfg.threads)
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    run_dir = Path(cfg.output_dir)
    refuse_existing_run(run_dir)
    model, tokenizer = load_policy(cfg.model)
    data = load_pair_data(cfg.data, tokenizer, cfg.seed)
    pad_id = tokenizer.pad_token_id
    optim = cfg.optim

    # the reference: the starting policy's log-probs, computed once up front, or a frozen copy
    ref_model = None
    t0 = time.perf_counter()
    if cfg.reference == "model":
        ref_model, _ = load_policy(cfg.model)
        ref_model.eval().requires_grad_(False)
        train_ref = None
    else:
        train_ref = all_sequence_logps(model, data.train, pad_id, optim.micro_batch_size, cfg.model.share_prompts)
    reference = ref_model if ref_model is not None else model  # still the starting weights here
    heldout_ref = (all_sequence_logps(reference, data.heldout, pad_id, optim.micro_batch_size, cfg.model.share_prompts)
                   if data.heldout else None)
    print(f"rlvr dpo: {len(data.train)} training pairs, {len(data.heldout)} held-out pairs "
          f"({data.summary['train_file_counts']['dropped_too_long']} longer than data.max_length dropped, "
          f"{data.summary['train_file_counts']['used_sampled_ids']} with the sampled token ids); reference "
          f"{cfg.reference} ({time.perf_counter() - t0:.1f}s)", file=sys.stderr)

    with RunLock(run_dir):  # one process per run folder
        refuse_existing_run(run_dir)  # again: another process may have started one since the check above
        (run_dir / "config.yaml").write_text(dump_yaml(cfg))
        return _train(cfg, run_dir, model, tokenizer, data, train_ref, ref_model, heldout_ref, show_progress)


def _train(cfg: DPOConfig, run_dir: Path, model, tokenizer, data: PairData,
           train_ref: tuple[torch.Tensor, torch.Tensor] | None, ref_model: torch.nn.Module | None,
           heldout_ref: tuple[torch.Tensor, torch.Tensor] | None, show_progress: bool) -> Path:
    pad_id, optim = tokenizer.pad_token_id, cfg.optim
    model.train()
    optimizer, scheduler = make_optimizer(model, optim.lr, optim.weight_decay, (optim.beta1, optim.beta2),
                                          optim.schedule, optim.warmup_steps, cfg.steps)
    order = BatchOrder(len(data.train), cfg.seed)
    log = RunLog(run_dir, tensorboard=False)
    chosen_change: list[float] = []
    rejected_change: list[float] = []
    final = run_dir
    last_heldout: dict[str, float] = {}
    bar = tqdm(range(1, cfg.steps + 1), desc="dpo", disable=not show_progress, dynamic_ncols=True)
    for step in bar:
        t0 = time.perf_counter()
        indices = order.next(cfg.batch_size)
        optimizer.zero_grad(set_to_none=True)
        sums: dict[str, float] = {}
        total_loss = 0.0
        for idx in chunks(indices, optim.micro_batch_size):
            pairs = [data.train[i] for i in idx]
            chosen, rejected = sequence_logps(model, pairs, pad_id, cfg.model.share_prompts)  # (b,), (b,)
            if train_ref is not None:
                ref_chosen, ref_rejected = train_ref[0][list(idx)], train_ref[1][list(idx)]
            else:
                with torch.no_grad():
                    ref_chosen, ref_rejected = sequence_logps(ref_model, pairs, pad_id, cfg.model.share_prompts)
            loss, m = dpo_loss(chosen, rejected, ref_chosen, ref_rejected, beta=cfg.beta,
                               label_smoothing=cfg.label_smoothing, num_pairs=len(indices))
            loss.backward()
            total_loss += float(loss.detach())
            m["logps_chosen_change"] = float((chosen.detach() - ref_chosen.to(chosen)).mean())
            m["logps_rejected_change"] = float((rejected.detach() - ref_rejected.to(rejected)).mean())
            for key, value in m.items():  # pair-weighted means over the micro-batches
                if key != "num_pairs":
                    sums[key] = sums.get(key, 0.0) + value * len(idx) / len(indices)
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), optim.max_grad_norm or float("inf"))
        optimizer.step()
        scheduler.step()

        metrics = {"dpo/loss": total_loss, **{f"dpo/{k}": v for k, v in sums.items()}}
        chosen_change.append(sums["logps_chosen_change"])
        rejected_change.append(sums["logps_rejected_change"])
        if len(chosen_change) % cfg.falling_window == 0:
            fell = falling_together(chosen_change, rejected_change, cfg.falling_window)
            metrics["dpo/both_logps_falling"] = float(fell is not None)
            if fell is not None:
                print(f"rlvr dpo: warning: over steps {step - cfg.falling_window + 1}-{step} the log-probs of both "
                      f"the chosen ({fell[0]:+.3f} nats) and the rejected completions ({fell[1]:+.3f} nats) fell: "
                      "the policy is moving probability to text that is in neither. Check held-out quality "
                      "(rlvr eval); if it drops, lower optim.lr or raise beta", file=sys.stderr)
        metrics.update({"optim/grad_norm": float(grad_norm), "optim/lr": scheduler.get_last_lr()[0],
                        "time/step": time.perf_counter() - t0})
        if heldout_ref is not None and ((cfg.eval_every and step % cfg.eval_every == 0) or step == cfg.steps):
            last_heldout = heldout_metrics(model, data.heldout, heldout_ref, pad_id, cfg)
            metrics.update({f"eval/{k}": v for k, v in last_heldout.items()})
        log.log(step, metrics)
        bar.set_postfix(loss=f"{total_loss:.3f}", acc=f"{sums['reward_accuracy']:.2f}")
        if step % cfg.save_every == 0 or step == cfg.steps:
            state = {"step": step, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                     "rng": rng_state()}
            final = save_checkpoint(run_dir, step, model, tokenizer, state, keep=cfg.keep_checkpoints)
    log.close()
    report = {"model": str(final), "data": data.summary, "heldout": last_heldout or None}
    (run_dir / "eval").mkdir(exist_ok=True)
    (run_dir / "eval" / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    return final
