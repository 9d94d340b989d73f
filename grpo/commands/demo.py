"""``rlvr demo``: the whole pipeline on the built-in ``arithmetic`` task, on a laptop CPU.

1. build a tiny Qwen2 policy and a BPE tokenizer locally (nothing from a hub);
2. SFT on the task's demonstrations (``grpo/configs/demo_sft.yaml``);
3. evaluate held-out pass@1 and pass@8 (8 samples per problem, temperature 1.0);
4. GRPO against the task's verifier (``grpo/configs/demo_grpo.yaml``);
5. evaluate again; print a before/after table; write plots and ``summary.json``.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from importlib import resources
from pathlib import Path
from typing import Sequence

import torch

from grpo.config import ConfigError, ModelConfig, RolloutConfig, SFTConfig, TrainConfig, load_config
from grpo.engines.base import SamplingParams
from grpo.engines.factory import build_engine
from grpo.eval import EvalResult, evaluate
from grpo.models import load_policy, load_tokenizer, quiet_transformers, setup_cpu
from grpo.sft import train_sft
from grpo.tiny_model import build_tiny_policy_for_task
from grpo.trainer import train
from tasks import get_task
from verifiers import get_verifier

DEMO_TASK = "arithmetic"
EVAL_N, EVAL_KS, EVAL_TEMPERATURE = 8, (1, 8), 1.0


def config_path(name: str) -> Path:
    return Path(str(resources.files("grpo") / "configs" / name))


def evaluate_model(model_dir: str | Path, task_name: str, problems: int, max_new_tokens: int, seed: int = 1234,
                   threads: int = 0) -> EvalResult:
    """pass@1 / pass@8 of a saved model on the first ``problems`` held-out problems."""
    setup_cpu(threads)
    torch.manual_seed(seed)
    model_cfg = ModelConfig(path=str(model_dir))
    tokenizer = load_tokenizer(model_cfg)
    task = get_task(task_name)
    rows = task.rows("test", problems)
    if len(rows) < problems:
        raise ConfigError(f"task {task_name!r} has only {len(rows)} held-out problems; ask for at most that many")
    prompt_ids = [task.encode(r, tokenizer) for r in rows]
    engine = build_engine(RolloutConfig(engine="hf", batch_size=512), model_cfg, tokenizer)
    sampling = SamplingParams(temperature=EVAL_TEMPERATURE, max_new_tokens=max_new_tokens)
    return evaluate(engine, prompt_ids, rows, get_verifier(task.verifier), n=EVAL_N, ks=EVAL_KS, sampling=sampling)


def final_evaluation(run_dir: Path, step: int) -> EvalResult:
    """The GRPO run's own held-out evaluation at its last step (reports in ``eval/step-N``)."""
    folder = run_dir / "eval" / f"step-{step}"
    summary = json.loads((folder / "summary.json").read_text())
    per_problem = [json.loads(line) for line in (folder / "per_problem.jsonl").read_text().splitlines()]
    metrics = summary["metrics"]
    return EvalResult(pass_at={k: metrics[f"pass@{k}"]["value"] for k in EVAL_KS},
                      mean_reward=metrics["mean_reward"]["value"],
                      unverifiable_rate=metrics["unverifiable_rate"], n_problems=summary["n_problems"],
                      n_samples=summary["n"], per_problem=per_problem)


STEP_BY_STEP = re.compile(r"\d+\s*[-+]\s*\d+\s*=\s*-?\d+")  # an intermediate "6 + 8 = 14"


def answer_styles(per_problem: list[dict]) -> dict[str, float]:
    """Shares of completions that box their answer, that work step by step, and the accuracy of boxed ones."""
    completions = [(c, v["status"]) for q in per_problem for c, v in zip(q["completions"], q["verdicts"])]
    boxed = [status for c, status in completions if "\\boxed{" in c]
    n = max(1, len(completions))
    return {"boxed_share": round(len(boxed) / n, 4),
            "step_by_step_share": round(sum(bool(STEP_BY_STEP.search(c)) for c, _ in completions) / n, 4),
            "boxed_accuracy": round(boxed.count("correct") / max(1, len(boxed)), 4)}


def _save_eval(result: EvalResult, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"summary": result.summary(), "per_problem": result.per_problem}, indent=1) + "\n")


def _pass_at_k_plot(sft: EvalResult, grpo: EvalResult, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"pass@{k}" for k in EVAL_KS]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    xs = range(len(labels))
    ax.bar([x - 0.2 for x in xs], [sft.pass_at[k] for k in EVAL_KS], width=0.4, label="SFT")
    ax.bar([x + 0.2 for x in xs], [grpo.pass_at[k] for k in EVAL_KS], width=0.4, label="SFT + GRPO")
    ax.set_xticks(list(xs), labels)
    ax.set_ylim(0, 1)
    ax.set_title(f"Held-out {DEMO_TASK}, {sft.n_problems} problems, T={EVAL_TEMPERATURE}")
    ax.legend()
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)


def start_demo_folder(out: Path) -> None:
    """An empty folder at ``out``: an earlier demo's folder (it holds ``base/``) is replaced, anything else refused."""
    if out.exists():
        if out.is_file() or (not (out / "base").exists() and any(out.iterdir())):
            raise ConfigError(f"{out} exists and is not a demo folder; choose another --output-dir")
        shutil.rmtree(out)  # a demo folder from an earlier run: start afresh
    out.mkdir(parents=True)


def run_demo(output_dir: str | Path = "runs/demo", grpo_overrides: Sequence[str] = (),
             sft_overrides: Sequence[str] = (), heldout: int = 200, show_progress: bool = True) -> dict:
    quiet_transformers()
    start = time.perf_counter()
    out = Path(output_dir)
    sft_cfg = load_config(SFTConfig, config_path("demo_sft.yaml"),
                          [f"model.path={out / 'base'}", f"output_dir={out / 'sft'}", *sft_overrides])
    grpo_cfg = load_config(TrainConfig, config_path("demo_grpo.yaml"),
                           [f"model.path={out / 'sft'}", f"output_dir={out / 'grpo'}", f"eval.problems={heldout}",
                            *grpo_overrides])
    if tuple(grpo_cfg.eval.ks) != EVAL_KS or grpo_cfg.eval.n != EVAL_N:
        raise ConfigError(f"the demo compares pass@1 and pass@8 of 8 samples before and after GRPO; keep eval.n = "
                          f"{EVAL_N} and eval.ks = {list(EVAL_KS)}")
    start_demo_folder(out)
    setup_cpu(grpo_cfg.threads)
    timings = {}

    def stage(title: str) -> None:
        print(f"\n== {title}  [{time.perf_counter() - start:.0f}s]", flush=True)

    stage("1/5 building a tiny Qwen2 policy and training its tokenizer")
    base = build_tiny_policy_for_task(out / "base", DEMO_TASK, seed=sft_cfg.seed)
    n_params = sum(p.numel() for p in load_policy(ModelConfig(path=str(base)))[0].parameters())
    print(f"   {n_params / 1e6:.2f}M parameters, saved to {base}")

    stage(f"2/5 SFT on chain-of-thought demonstrations ({sft_cfg.steps} steps)")
    t = time.perf_counter()
    sft_model = train_sft(sft_cfg, show_progress=show_progress)
    timings["sft_seconds"] = time.perf_counter() - t

    stage(f"3/5 evaluating the SFT policy on {heldout} held-out problems ({EVAL_N} samples each)")
    t = time.perf_counter()
    max_tokens = grpo_cfg.rollout.max_new_tokens
    sft_eval = evaluate_model(sft_model, DEMO_TASK, heldout, max_tokens, threads=grpo_cfg.threads)
    _save_eval(sft_eval, out / "eval" / "sft.json")
    print(f"   pass@1 {sft_eval.pass_at[1]:.3f}   pass@8 {sft_eval.pass_at[8]:.3f}")
    timings["eval_seconds"] = time.perf_counter() - t

    stage(f"4/5 GRPO against the verifier ({grpo_cfg.steps} steps, "
          f"{grpo_cfg.algo.prompts_per_step} prompts x {grpo_cfg.algo.group_size} samples)")
    t = time.perf_counter()
    run_dir = train(grpo_cfg, show_progress=show_progress)
    timings["grpo_seconds"] = time.perf_counter() - t

    stage("5/5 the GRPO policy on the same held-out problems (its final evaluation in training)")
    grpo_eval = final_evaluation(run_dir, grpo_cfg.steps)
    _pass_at_k_plot(sft_eval, grpo_eval, out / "plots" / "pass_at_k.png")
    sft_styles, grpo_styles = answer_styles(sft_eval.per_problem), answer_styles(grpo_eval.per_problem)

    summary = {
        "task": DEMO_TASK,
        "n_heldout": heldout,
        "samples_per_problem": EVAL_N,
        "temperature": EVAL_TEMPERATURE,
        "sft_pass_at_1": sft_eval.pass_at[1],
        "grpo_pass_at_1": grpo_eval.pass_at[1],
        "sft_pass_at_8": sft_eval.pass_at[8],
        "grpo_pass_at_8": grpo_eval.pass_at[8],
        "pass_at_1_gain": grpo_eval.pass_at[1] - sft_eval.pass_at[1],
        **{f"sft_{k}": v for k, v in sft_styles.items()},
        **{f"grpo_{k}": v for k, v in grpo_styles.items()},
        "seed": grpo_cfg.seed,
        "n_parameters": n_params,
        **{k: round(v, 1) for k, v in timings.items()},
        "wall_seconds": round(time.perf_counter() - start, 1),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\n{'':14}{'SFT':>8}{'GRPO':>8}{'change':>9}")
    for k in EVAL_KS:
        a, b = sft_eval.pass_at[k], grpo_eval.pass_at[k]
        print(f"{'pass@' + str(k):14}{a:8.3f}{b:8.3f}{b - a:+9.3f}")
    for key, label in (("boxed_share", "boxed"), ("step_by_step_share", "step by step"),
                       ("boxed_accuracy", "boxed correct")):
        a, b = sft_styles[key], grpo_styles[key]
        print(f"{label:14}{a:8.3f}{b:8.3f}{b - a:+9.3f}")
    print(f"\nheld-out problems: {heldout}; wall time {summary['wall_seconds']:.0f}s")
    print(f"summary: {out / 'summary.json'}; plots: {out / 'plots'} and {run_dir / 'plots'}; "
          f"TensorBoard: tensorboard --logdir {run_dir / 'tensorboard'}")
    return summary
