"""``rlvr demo --recipe rlhf``: the RLHF path beside GRPO, on the built-in ``arithmetic`` task, on a CPU.

1. build the tiny Qwen2 policy and SFT it, as ``rlvr demo`` does (``demo_sft.yaml``); evaluate it;
2. ``rlvr pairs``: (correct, incorrect) pairs of the SFT policy's own samples, training prompts from the
   train split, held-out pairs from the test split (``demo_rlhf_pairs.yaml``);
3. ``rlvr rm``: a Bradley-Terry reward model on those pairs (``demo_rlhf_rm.yaml``);
4. ``rlvr ppo`` against the reward model alone; the verifier is only the gold score of the
   reward-hacking monitor, which warns (``demo_rlhf_ppo.yaml``);
5. GRPO against the verifier on PPO's budget: the same steps and samples per step (``demo_rlhf_grpo.yaml``);
6. ``rlvr dpo`` on the same pairs (``demo_rlhf_dpo.yaml``);
7. every policy's held-out pass@1 on the same problems with the same sampling; a table, ``summary.json``
   and the PPO run's proxy-vs-gold plot in ``plots/``.

PPO and GRPO figures are their runs' own final evaluations (one figure per model, as in ``rlvr demo``);
the SFT and DPO policies are evaluated by ``demo.evaluate_model`` with the same settings.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from grpo.commands.demo import (DEMO_TASK, EVAL_KS, EVAL_N, EVAL_TEMPERATURE, _save_eval, answer_styles, config_path,
                                evaluate_model, final_evaluation, start_demo_folder)
from grpo.config import (ConfigError, DPOConfig, PairsConfig, PPOConfig, RewardModelConfig, SFTConfig, TrainConfig,
                         load_config)
from grpo.engines.base import SamplingParams
from grpo.eval import EvalResult
from grpo.models import quiet_transformers, setup_cpu
from grpo.runlog import read_jsonl

STAGES = ("sft", "pairs", "rm", "ppo", "grpo", "dpo")
TREND_STEPS = 10  # PPO's proxy and gold at its start and end: means over this many steps


@dataclass(frozen=True)
class RLHFDemoConfigs:
    """The resolved config of each stage."""

    sft: SFTConfig
    pairs: PairsConfig
    rm: RewardModelConfig
    ppo: PPOConfig
    grpo: TrainConfig
    dpo: DPOConfig


def load_stage_configs(out: Path, seed: int, heldout: int,
                       overrides: Mapping[str, Sequence[str]] | None = None) -> RLHFDemoConfigs:
    """Each stage's YAML < ``seed`` < that stage's ``overrides`` < the demo's own paths and held-out size.

    Refuses (``ConfigError``) unknown stage names and configs whose figures could not be compared.
    """
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(STAGES))
    if unknown:
        raise ConfigError(f"overrides for unknown stage(s) {unknown}; the stages are {list(STAGES)}")
    sft_model, pairs_file, heldout_pairs = out / "sft", out / "pairs" / "train.jsonl", out / "pairs" / "heldout.jsonl"
    data = [f"data.train={pairs_file}", f"data.heldout={heldout_pairs}"]
    fixed = {
        "sft": [f"model.path={out / 'base'}", f"output_dir={sft_model}"],
        "pairs": [f"model.path={sft_model}", f"output={pairs_file}", f"heldout_output={heldout_pairs}"],
        "rm": [f"model.path={sft_model}", *data, f"agreement.policy={sft_model}", f"output_dir={out / 'rm'}"],
        "ppo": [f"model.path={sft_model}", f"reward.reward_model.path={out / 'rm'}", f"output_dir={out / 'ppo'}",
                f"eval.problems={heldout}"],
        "grpo": [f"model.path={sft_model}", f"output_dir={out / 'grpo'}", f"eval.problems={heldout}"],
        "dpo": [f"model.path={sft_model}", *data, f"output_dir={out / 'dpo'}"],
    }
    files = {"sft": "demo_sft.yaml", **{s: f"demo_rlhf_{s}.yaml" for s in STAGES[1:]}}
    classes = {"sft": SFTConfig, "pairs": PairsConfig, "rm": RewardModelConfig, "ppo": PPOConfig,
               "grpo": TrainConfig, "dpo": DPOConfig}
    cfgs = RLHFDemoConfigs(**{s: load_config(classes[s], config_path(files[s]),
                                             [f"seed={seed}", *overrides.get(s, ()), *fixed[s]]) for s in STAGES})
    check_comparable(cfgs)
    return cfgs


def check_comparable(cfgs: RLHFDemoConfigs) -> None:
    """PPO and GRPO on one budget; every policy evaluated on the same problems with the same sampling."""
    ppo, grpo = cfgs.ppo, cfgs.grpo
    ppo_batch, grpo_batch = ppo.algo.prompts_per_step * ppo.algo.group_size, grpo.algo.prompts_per_step * grpo.algo.group_size
    if (ppo.steps, ppo_batch) != (grpo.steps, grpo_batch):
        raise ConfigError(f"the demo compares PPO and GRPO on the same budget, but PPO has {ppo.steps} steps of "
                          f"{ppo_batch} samples and GRPO {grpo.steps} steps of {grpo_batch}: set ppo steps and "
                          "algo.prompts_per_step * algo.group_size equal to grpo's")
    reference = SamplingParams(temperature=EVAL_TEMPERATURE, max_new_tokens=grpo.eval.max_new_tokens)
    for name, cfg in (("ppo", ppo), ("grpo", grpo)):
        if (cfg.eval.n, tuple(cfg.eval.ks), cfg.eval.split) != (EVAL_N, EVAL_KS, "test"):
            raise ConfigError(f"{name}: the demo evaluates every policy with {EVAL_N} samples per test problem and "
                              f"pass@k for k in {list(EVAL_KS)}; keep eval.n = {EVAL_N}, eval.ks = {list(EVAL_KS)}, "
                              "eval.split = test")
        if cfg.eval.sampling_with(cfg.rollout) != reference:
            raise ConfigError(f"{name}: every policy is evaluated with {reference}; the {name} stage's eval "
                              f"samples with {cfg.eval.sampling_with(cfg.rollout)}")


def ppo_trends(run_dir: Path, steps: int = TREND_STEPS) -> dict[str, Any]:
    """Proxy (the RM's normalized score) and gold (the verifier's accuracy) of PPO's training samples, as means
    over its first and last ``steps`` steps; the held-out figures at each evaluation; the monitor's verdict."""
    rows = [r for r in read_jsonl(run_dir / "metrics.jsonl") if r.get("monitor/proxy") is not None]
    if not rows:
        return {}
    k = max(1, min(steps, len(rows) // 2))

    def mean(key: str, part: list[dict]) -> float:
        return round(sum(r[key] for r in part) / len(part), 4)

    flagged = [r["step"] for r in rows if r.get("monitor/diverging") == 1.0]
    return {
        "ppo_trend_steps": k,
        "ppo_proxy_start": mean("monitor/proxy", rows[:k]), "ppo_proxy_end": mean("monitor/proxy", rows[-k:]),
        "ppo_gold_start": mean("monitor/gold", rows[:k]), "ppo_gold_end": mean("monitor/gold", rows[-k:]),
        "ppo_sqrt_kl_end": mean("monitor/sqrt_kl", rows[-k:]),
        "ppo_heldout": [{"step": r["step"], "pass_at_1": round(r["eval/pass@1"], 4),
                         "rm_score": round(r["eval/rm_score"], 4)} for r in rows if "eval/pass@1" in r],
        "monitor_flagged": bool(flagged),
        "monitor_first_flag_step": flagged[0] if flagged else None,
    }


def run_rlhf_demo(output_dir: str | Path = "runs/demo-rlhf", seed: int | None = None, show_progress: bool = True,
                  heldout: int = 200, overrides: Mapping[str, Sequence[str]] | None = None) -> dict:
    """Run every stage into ``output_dir``; returns (and writes) ``summary.json``'s contents.

    ``overrides``: ``KEY=VALUE`` fields per stage name (``sft``, ``pairs``, ``rm``, ``ppo``, ``grpo``, ``dpo``),
    e.g. a smaller budget. Bad input (an override, a folder that is not a demo's) fails before anything is written.
    """
    quiet_transformers()
    start = time.perf_counter()
    out = Path(output_dir)
    seed = 0 if seed is None else seed
    cfgs = load_stage_configs(out, seed, heldout, overrides)
    start_demo_folder(out)
    setup_cpu(cfgs.grpo.threads)
    max_tokens = cfgs.grpo.eval.max_new_tokens
    timings: dict[str, float] = {}

    def stage(title: str) -> float:
        print(f"\n== {title}  [{time.perf_counter() - start:.0f}s]", flush=True)
        return time.perf_counter()

    def evaluate(model_dir: Path, name: str) -> EvalResult:
        result = evaluate_model(model_dir, DEMO_TASK, heldout, max_tokens, threads=cfgs.grpo.threads)
        _save_eval(result, out / "eval" / f"{name}.json")
        return result

    from grpo.commands.pairs import generate_pairs
    from grpo.dpo import train_dpo
    from grpo.ppo import train_ppo
    from grpo.rm_train import train_reward_model
    from grpo.sft import train_sft
    from grpo.tiny_model import build_tiny_policy_for_task
    from grpo.trainer import train

    t = stage(f"1/7 tiny Qwen2 policy, SFT ({cfgs.sft.steps} steps), held-out evaluation ({heldout} problems)")
    build_tiny_policy_for_task(out / "base", DEMO_TASK, seed=cfgs.sft.seed)
    sft_model = train_sft(cfgs.sft, show_progress=show_progress)
    sft_eval = evaluate(sft_model, "sft")
    timings["sft_seconds"] = time.perf_counter() - t
    print(f"   SFT pass@1 {sft_eval.pass_at[1]:.3f}")

    t = stage(f"2/7 preference pairs from the SFT policy's samples ({cfgs.pairs.group_size} per prompt)")
    pairs = generate_pairs(cfgs.pairs, show_progress=show_progress)
    counts = list(pairs["files"].values())
    timings["pairs_seconds"] = time.perf_counter() - t

    t = stage(f"3/7 reward model on {counts[0]['pairs']} pairs ({cfgs.rm.steps} steps)")
    train_reward_model(cfgs.rm, show_progress=show_progress)
    rm_report = json.loads((out / "rm" / "eval" / "report.json").read_text())
    timings["rm_seconds"] = time.perf_counter() - t

    budget = f"{cfgs.ppo.steps} steps x {cfgs.ppo.algo.prompts_per_step * cfgs.ppo.algo.group_size} samples"
    t = stage(f"4/7 PPO against the reward model ({budget}); the verifier only watches")
    ppo_dir = train_ppo(cfgs.ppo, show_progress=show_progress)
    ppo_eval = final_evaluation(ppo_dir, cfgs.ppo.steps)
    timings["ppo_seconds"] = time.perf_counter() - t

    t = stage(f"5/7 GRPO against the verifier on the same budget ({budget})")
    grpo_dir = train(cfgs.grpo, show_progress=show_progress)
    grpo_eval = final_evaluation(grpo_dir, cfgs.grpo.steps)
    timings["grpo_seconds"] = time.perf_counter() - t

    t = stage(f"6/7 DPO on the same pairs ({cfgs.dpo.steps} steps), held-out evaluation")
    dpo_model = train_dpo(cfgs.dpo, show_progress=show_progress)
    dpo_eval = evaluate(dpo_model, "dpo")
    timings["dpo_seconds"] = time.perf_counter() - t

    stage("7/7 summary")
    plot = out / "plots" / "overoptimization.png"
    plot.parent.mkdir(exist_ok=True)
    shutil.copyfile(ppo_dir / "plots" / "overoptimization.png", plot)
    evals = {"sft": sft_eval, "ppo": ppo_eval, "grpo": grpo_eval, "dpo": dpo_eval}
    agreement = rm_report.get("agreement") or {}
    summary = {
        "task": DEMO_TASK, "n_heldout": heldout, "samples_per_problem": EVAL_N, "temperature": EVAL_TEMPERATURE,
        **{f"{name}_pass_at_1": e.pass_at[1] for name, e in evals.items()},
        **{f"{name}_pass_at_8": e.pass_at[8] for name, e in evals.items()},
        # how each policy answers: boxed (the verifier's format), step by step, and how often a boxed answer is right
        **{f"{name}_{k}": v for name, e in evals.items() for k, v in answer_styles(e.per_problem).items()},
        "pairs_train": counts[0]["pairs"], "pairs_heldout": counts[1]["pairs"] if len(counts) > 1 else 0,
        "rm_heldout_accuracy": (rm_report.get("heldout") or {}).get("accuracy"),
        "rm_agreement_auc": agreement.get("auc"),
        "rm_agreement_within_prompt_accuracy": (agreement.get("within_prompt_order") or {}).get("accuracy"),
        "budget_steps": cfgs.ppo.steps,
        "budget_samples_per_step": cfgs.ppo.algo.prompts_per_step * cfgs.ppo.algo.group_size,
        **ppo_trends(ppo_dir),
        "overoptimization_plot": str(plot),
        "seed": seed, "threads": cfgs.grpo.threads,
        **{k: round(v, 1) for k, v in timings.items()},
        "wall_seconds": round(time.perf_counter() - start, 1),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print_table(summary, evals)
    return summary


def print_table(summary: dict, evals: Mapping[str, EvalResult]) -> None:
    labels = {"sft": "SFT", "ppo": "PPO (reward model)", "grpo": "GRPO (verifier)", "dpo": "DPO (pairs)"}
    sft = evals["sft"].pass_at[1]
    print(f"\nheld-out {DEMO_TASK}: {summary['n_heldout']} problems x {EVAL_N} samples, T={EVAL_TEMPERATURE}")
    print(f"{'':20}{'pass@1':>8}{'pass@8':>8}{'vs SFT':>9}{'boxed':>8}{'stepwise':>10}{'boxed ok':>10}")
    for name, e in evals.items():
        change = f"{e.pass_at[1] - sft:+9.3f}" if name != "sft" else f"{'':9}"
        print(f"{labels[name]:20}{e.pass_at[1]:8.3f}{e.pass_at[8]:8.3f}{change}{summary[f'{name}_boxed_share']:8.3f}"
              f"{summary[f'{name}_step_by_step_share']:10.3f}{summary[f'{name}_boxed_accuracy']:10.3f}")
    rm = summary["rm_heldout_accuracy"]
    print(f"\nreward model: held-out pair accuracy {rm:.3f} ({summary['pairs_heldout']} pairs)"
          if rm is not None else "\nreward model: no held-out pairs")
    if "ppo_proxy_start" in summary:
        k = summary["ppo_trend_steps"]
        print(f"PPO, mean of the first -> last {k} steps: proxy (RM, normalized) {summary['ppo_proxy_start']:+.3f} -> "
              f"{summary['ppo_proxy_end']:+.3f}; gold (verifier accuracy) {summary['ppo_gold_start']:.3f} -> "
              f"{summary['ppo_gold_end']:.3f}; reward-hacking monitor: "
              + (f"flagged at step {summary['monitor_first_flag_step']}" if summary["monitor_flagged"]
                 else "never flagged"))
    print(f"wall time {summary['wall_seconds']:.0f}s; summary: {Path(summary['overoptimization_plot']).parents[1]}"
          f"/summary.json; proxy vs gold: {summary['overoptimization_plot']}")
