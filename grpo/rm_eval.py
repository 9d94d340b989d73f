"""How good is a reward model: pairwise accuracy, calibration, agreement with the verifier.

The metrics are pure functions of score tensors; ``agreement_on_policy_samples``
samples fresh completions from a policy, labels them with the task's verifier and
asks whether the reward model orders them the same way; ``write_report`` writes
``eval/report.json`` and ``eval/report.md`` into the run folder.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F


def pairwise_metrics(chosen: torch.Tensor, rejected: torch.Tensor) -> dict[str, float]:
    """Accuracy (chosen scored higher; a tie counts half), mean margin ``r_c - r_r`` and
    the Bradley-Terry loss ``mean -log sigmoid(r_c - r_r)``.

    Args:
        chosen: (N,) rewards of the preferred completions.
        rejected: (N,) rewards of the others.
    """
    if chosen.shape != rejected.shape or chosen.dim() != 1 or chosen.numel() == 0:
        raise ValueError(f"chosen and rejected must be (N,) with N >= 1, got {tuple(chosen.shape)} "
                         f"and {tuple(rejected.shape)}")
    diff = chosen.double() - rejected.double()  # (N,)
    return {
        "accuracy": float(((diff > 0).double() + 0.5 * (diff == 0).double()).mean()),
        "margin_mean": float(diff.mean()),
        "bt_loss": float(-F.logsigmoid(diff).mean()),
        "pairs": int(diff.numel()),
    }


def calibration_table(chosen: torch.Tensor, rejected: torch.Tensor, bins: int = 10) -> dict[str, Any]:
    """Bradley-Terry probabilities against observed outcomes, in equal-width bins over [0, 1].

    Each pair is looked at in both orders: ``p = sigmoid(r_c - r_r)`` with outcome 1 (the first
    is the chosen one) and ``1 - p`` with outcome 0, so the table is symmetric and a perfectly
    calibrated model has ``observed == mean_predicted`` in every bin. ``ece`` is the
    count-weighted mean of ``|observed - mean_predicted|`` (expected calibration error).

    Args:
        chosen: (N,) rewards of the preferred completions.
        rejected: (N,) rewards of the others.
        bins: number of bins, >= 2.

    Returns:
        ``{"bins": [{"low", "high", "count", "mean_predicted", "observed"}, ...], "ece": float}``;
        empty bins have count 0 and null means.
    """
    if bins < 2:
        raise ValueError(f"bins must be >= 2, got {bins}")
    p = torch.sigmoid(chosen.double() - rejected.double())  # (N,)
    probs = torch.cat([p, 1 - p])  # (2N,)
    outcomes = torch.cat([torch.ones_like(p), torch.zeros_like(p)])  # (2N,)
    index = torch.clamp((probs * bins).long(), max=bins - 1)  # (2N,) p = 1 falls into the last bin
    rows, ece = [], 0.0
    for b in range(bins):
        sel = index == b
        count = int(sel.sum())
        row: dict[str, Any] = {"low": b / bins, "high": (b + 1) / bins, "count": count,
                               "mean_predicted": None, "observed": None}
        if count:
            row["mean_predicted"] = float(probs[sel].mean())
            row["observed"] = float(outcomes[sel].mean())
            ece += count * abs(row["observed"] - row["mean_predicted"])
        rows.append(row)
    return {"bins": rows, "ece": ece / probs.numel()}


def roc_auc(scores: torch.Tensor, labels: torch.Tensor) -> float | None:
    """Area under the ROC curve: P(score of a random positive > that of a random negative), ties half.

    Computed from average ranks (Mann-Whitney U). None when one class is absent.

    Args:
        scores: (N,) real scores.
        labels: (N,) bool or 0/1, 1 = positive.
    """
    labels = labels.bool()
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    s = scores.double()
    order = torch.argsort(s)
    ranks = torch.empty_like(s)
    sorted_s = s[order]
    i, n = 0, len(s)
    while i < n:  # average rank over ties
        j = i
        while j + 1 < n and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    u = float(ranks[labels].sum()) - n_pos * (n_pos + 1) / 2
    return u / (n_pos * n_neg)


def within_group_order(scores: torch.Tensor, labels: torch.Tensor, groups: Sequence[int]) -> dict[str, float | None]:
    """Over all (correct, incorrect) pairs of samples of the same prompt: how often the correct one
    scores higher (ties half). This is the reward model's job in PPO: rank a prompt's samples.

    Args:
        scores: (N,) reward-model scores.
        labels: (N,) bool, True = judged correct.
        groups: (N,) the prompt each sample answers.
    """
    right, total = 0.0, 0
    by_group: dict[int, list[int]] = {}
    for i, g in enumerate(groups):
        by_group.setdefault(int(g), []).append(i)
    for members in by_group.values():
        pos = [scores[i].item() for i in members if labels[i]]
        neg = [scores[i].item() for i in members if not labels[i]]
        for a in pos:
            for b in neg:
                right += 1.0 if a > b else 0.5 if a == b else 0.0
                total += 1
    return {"accuracy": right / total if total else None, "pairs": total}


# --------------------------------------------------------------------------- agreement on fresh samples


def agreement_on_policy_samples(reward_model, rm_tokenizer, cfg, seed: int) -> dict[str, Any]:
    """Sample ``cfg.n`` completions for ``cfg.problems`` prompts of ``cfg.task`` from ``cfg.policy``,
    label them with the verifier, score them with the reward model, and compare.

    ``cfg`` is an ``AgreementConfig``. The reward model scores the token ids the policy sampled
    (prompt + completion), as PPO does, so both must share a tokenizer.
    """
    from grpo.config import ConfigError, ModelConfig, RolloutConfig
    from grpo.engines.factory import build_engine
    from grpo.models import load_tokenizer
    from grpo.reward_model import score_sequences
    from tasks import get_task
    from verifiers import get_verifier, verify_batch

    task = get_task(cfg.task)
    rows = task.rows(cfg.split, cfg.problems)
    if not rows:
        raise ConfigError(f"agreement: task {task.name!r} split {cfg.split!r} has no problems")
    try:
        verifier = get_verifier(cfg.verifier or task.verifier)
    except ValueError as exc:
        raise ConfigError(f"agreement.verifier: {exc}") from exc
    policy_cfg = ModelConfig(path=cfg.policy)
    tokenizer = load_tokenizer(policy_cfg)
    if tokenizer.get_vocab() != rm_tokenizer.get_vocab():
        raise ConfigError(f"agreement.policy {cfg.policy!r} has another tokenizer than the reward model; the reward "
                          "model scores the token ids the policy samples (as in PPO), so use a policy with its tokenizer")
    prompt_ids = [task.encode(r, tokenizer) for r in rows]
    engine = build_engine(RolloutConfig(engine=cfg.engine, gpu_memory_utilization=0.5, vllm_sleep_level=0),
                          policy_cfg, tokenizer, seed=seed)
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        completions = engine.generate(prompt_ids, cfg.n, cfg.sampling())
    engine.close()
    sample_rows = [rows[i] for i in completions.prompt_index]
    verdicts = verify_batch(verifier, completions.text, sample_rows, finish_reasons=completions.finish_reason)
    judged = [i for i, v in enumerate(verdicts) if v.status != "unverifiable"]
    sequences = [list(prompt_ids[completions.prompt_index[i]]) + list(completions.token_ids[i]) for i in judged]
    pad_id = rm_tokenizer.pad_token_id
    scores = score_sequences(reward_model, sequences, pad_id) if sequences else torch.zeros(0)
    labels = torch.tensor([verdicts[i].status == "correct" for i in judged], dtype=torch.bool)
    groups = [completions.prompt_index[i] for i in judged]
    correct = scores[labels]
    incorrect = scores[~labels]
    return {
        "policy": cfg.policy, "task": task.name, "split": cfg.split, "problems": len(rows), "n": cfg.n,
        "verifier": verifier.name, "samples": len(verdicts), "unverifiable": len(verdicts) - len(judged),
        "verifier_accuracy": float(labels.float().mean()) if len(judged) else None,
        "auc": roc_auc(scores, labels),
        "within_prompt_order": within_group_order(scores, labels, groups),
        "mean_score_correct": float(correct.mean()) if correct.numel() else None,
        "mean_score_incorrect": float(incorrect.mean()) if incorrect.numel() else None,
    }


# --------------------------------------------------------------------------- the report


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if math.isfinite(value) else str(value)
    return str(value)


def report_markdown(report: dict[str, Any]) -> str:
    lines = [f"# Reward model: {report['model']}", ""]
    held = report.get("heldout")
    if held is None:
        lines += ["No held-out pairs (data.heldout_fraction = 0 and no data.heldout file).", ""]
    else:
        lines += ["| held-out pairs | accuracy | mean margin | BT loss | ECE |", "|---|---|---|---|---|",
                  f"| {held['pairs']} | {_fmt(held['accuracy'])} | {_fmt(held['margin_mean'])} | "
                  f"{_fmt(held['bt_loss'])} | {_fmt(held['calibration']['ece'])} |", "",
                  "Calibration (each pair in both orders): predicted P(first preferred) against observed.", "",
                  "| bin | pairs | mean predicted | observed |", "|---|---|---|---|"]
        for row in held["calibration"]["bins"]:
            lines.append(f"| {row['low']:.1f}-{row['high']:.1f} | {row['count']} | {_fmt(row['mean_predicted'])} | "
                         f"{_fmt(row['observed'])} |")
        lines.append("")
    train = report["train"]
    lines += [f"Training pairs: {train['pairs']}, accuracy {_fmt(train['accuracy'])}, mean margin "
              f"{_fmt(train['margin_mean'])}. Reward statistics (saved as reward_stats.json): mean "
              f"{_fmt(report['reward_stats']['mean'])}, std {_fmt(report['reward_stats']['std'])}, "
              f"n {report['reward_stats']['n']}.", ""]
    agreement = report.get("agreement")
    if agreement is not None:
        order = agreement["within_prompt_order"]
        lines += [f"## Agreement with the verifier on fresh samples of {agreement['policy']}", "",
                  "| samples | verifier accuracy | AUC | within-prompt order (pairs) | mean score correct | "
                  "mean score incorrect |", "|---|---|---|---|---|---|",
                  f"| {agreement['samples']} | {_fmt(agreement['verifier_accuracy'])} | {_fmt(agreement['auc'])} | "
                  f"{_fmt(order['accuracy'])} ({order['pairs']}) | {_fmt(agreement['mean_score_correct'])} | "
                  f"{_fmt(agreement['mean_score_incorrect'])} |", ""]
    return "\n".join(lines)


def write_report(report: dict[str, Any], folder: str | Path) -> dict[str, Path]:
    """``report.json`` and ``report.md`` in ``folder``."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "report.json", "md": out / "report.md"}
    paths["json"].write_text(json.dumps(report, indent=1) + "\n")
    paths["md"].write_text(report_markdown(report))
    return paths
