"""PNG plots of a run's metrics.jsonl (matplotlib, no display needed).

A metric key may be a pattern (``eval/pass@*``): every metric of the run that matches is
drawn. Where a metric has ``<key>_ci_low`` / ``<key>_ci_high`` beside it (held-out
evaluation's bootstrap intervals), the 95% interval is drawn as a band.
"""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

from grpo.runlog import read_jsonl

# file name -> (title, metric keys drawn on it)
PLOTS = {
    "reward.png": ("Training reward and accuracy", ["reward/mean", "reward/accuracy"]),
    "heldout_pass_at_1.png": ("Held-out pass@1 (95% CI)", ["eval/pass@1"]),
    "heldout_pass_at_k.png": ("Held-out pass@k and maj@k (95% CI)", ["eval/pass@*", "eval/maj@*"]),
    "heldout_reward.png": ("Held-out mean reward and unverifiable rate", ["eval/mean_reward", "eval/unverifiable_rate"]),
    "kl.png": ("KL to the reference (k3)", ["loss/kl"]),
    "length.png": ("Completion length (tokens)", ["completion/length_mean"]),
    "entropy.png": ("Policy entropy (nats/token)", ["loss/entropy"]),
}


def write_plots(run_dir: str | Path) -> list[Path]:
    """Draw each plot of ``PLOTS`` that has data in this run; returns the files written.

    Series with the same values at every step are drawn once, with both names in the legend
    (``reward/mean`` is ``reward/accuracy`` for 0/1 rewards; ``maj@1`` is ``pass@1``); a KL that is
    zero because the KL term is off says so instead of drawing a flat line.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    run = Path(run_dir)
    rows = read_jsonl(run / "metrics.jsonl")
    out_dir = run / "plots"
    out_dir.mkdir(exist_ok=True)
    written = []
    names = sorted({k for r in rows for k in r if not k.endswith(("_ci_low", "_ci_high"))}, key=_natural)
    for name, (title, patterns) in PLOTS.items():
        series = plot_series(rows, names, patterns)
        if not series:
            continue
        fig, ax = plt.subplots(figsize=(6, 3.5))
        steps = sorted({q[0] for _, pts in series for q in pts})
        if name == "kl.png" and all(q[1] == 0 for _, pts in series for q in pts):
            ax.text(0.5, 0.5, "KL term off (algo.kl_coef = 0): no reference model, KL not computed",
                    ha="center", va="center", transform=ax.transAxes, wrap=True)
        else:
            for keys, points in series:
                xs, ys, lows, highs = zip(*points)
                line, = ax.plot(xs, ys, marker="o" if len(points) < 30 else None, label=" = ".join(keys),
                                linestyle="--" if all("maj@" in k for k in keys) else "-")
                band = [(x, lo, hi) for x, lo, hi in zip(xs, lows, highs) if lo is not None and hi is not None]
                if band:
                    bx, blo, bhi = zip(*band)
                    ax.fill_between(bx, blo, bhi, color=line.get_color(), alpha=0.15, linewidth=0)
            ax.legend()
        ax.set_title(title)
        ax.set_xlabel("step")
        if len(steps) <= 10:  # few points: a tick at each step, never a fractional one
            ax.set_xticks(steps)
            ax.set_xlim(steps[0] - 0.5, steps[-1] + 0.5)
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(out_dir / name, dpi=100)
        plt.close(fig)
        written.append(out_dir / name)
    return written


def plot_series(rows: list[dict], names: list[str], patterns: list[str]) -> list[tuple[list[str], list[tuple]]]:
    """``[(keys, points)]`` to draw: each point ``(step, value, ci_low, ci_high)``; metrics whose values are
    the same at every step share one series (their keys listed together)."""
    series: list[tuple[list[str], list[tuple]]] = []
    for key in [k for p in patterns for k in (fnmatch.filter(names, p) if "*" in p else [p])]:
        points = [(r["step"], r[key], r.get(f"{key}_ci_low"), r.get(f"{key}_ci_high"))
                  for r in rows if r.get(key) is not None]
        if not points:
            continue
        same = next((keys for keys, pts in series if [q[:2] for q in pts] == [q[:2] for q in points]), None)
        if same is not None:
            same.append(key)
        else:
            series.append(([key], points))
    return series


def _natural(key: str) -> list:
    """Sort key that puts pass@4 before pass@16."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", key)]


# ---------------------------------------------------------------- PPO (grpo/ppo.py)

# file name -> (title, metric keys drawn on it against the step)
PPO_PLOTS = {
    "ppo_reward.png": ("PPO score, reward-model score (normalized) and verifier accuracy",
                       ["reward/mean", "reward/rm_mean", "reward/accuracy"]),
    "ppo_kl.png": ("KL to the reference (nats per sample) and its coefficient", ["kl/sequence", "kl/coef"]),
    "ppo_critic.png": ("Critic: explained variance of the returns, value loss", ["critic/explained_variance",
                                                                                 "loss/value"]),
}


def write_ppo_plots(run_dir: str | Path) -> list[Path]:
    """The PPO plots of a run that has their metrics: ``PPO_PLOTS`` against the step, and
    ``overoptimization.png`` (see :func:`overoptimization_plot`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run = Path(run_dir)
    rows = read_jsonl(run / "metrics.jsonl")
    out_dir = run / "plots"
    out_dir.mkdir(exist_ok=True)
    written = []
    for name, (title, keys) in PPO_PLOTS.items():
        series = {k: [(r["step"], r[k]) for r in rows if r.get(k) is not None] for k in keys}
        series = {k: pts for k, pts in series.items() if pts}
        if not series:
            continue
        fig, ax = plt.subplots(figsize=(6, 3.5))
        for key, points in series.items():
            xs, ys = zip(*points)
            ax.plot(xs, ys, marker="o" if len(points) < 30 else None, label=key)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(out_dir / name, dpi=100)
        plt.close(fig)
        written.append(out_dir / name)
    path = overoptimization_plot(run)
    return written + ([path] if path is not None else [])


def overoptimization_plot(run_dir: str | Path) -> Path | None:
    """``plots/overoptimization.png``: proxy and gold against sqrt(KL), the axes of Gao et al. 2022
    ("Scaling laws for reward model overoptimization", arXiv:2210.10760).

    x: ``monitor/sqrt_kl``, the square root of the KL to the reference (nats per sample). Left axis:
    the proxy, the reward model's normalized score of each step's samples (``monitor/proxy``, line)
    and of the held-out samples (``eval/rm_score``, squares). Right axis: the gold, the verifier's
    accuracy on the same samples (``monitor/gold``) and held-out pass@1 (``eval/pass@1``). The step
    marked in ``best_gold.json`` gets a dotted vertical line. Reading it: while both rise together the
    reward model is a good proxy; where gold turns down as the proxy keeps rising, the policy is
    exploiting the reward model. None when the run has no monitor metrics (no reward model).
    """
    import json

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run = Path(run_dir)
    rows = [r for r in read_jsonl(run / "metrics.jsonl") if r.get("monitor/sqrt_kl") is not None]
    if not rows:
        return None
    fig, proxy_ax = plt.subplots(figsize=(6.5, 4))
    gold_ax = proxy_ax.twinx()
    for ax, key, heldout, color, label in ((proxy_ax, "monitor/proxy", "eval/rm_score", "tab:blue", "proxy: RM score"),
                                           (gold_ax, "monitor/gold", "eval/pass@1", "tab:orange", "gold: verifier")):
        points = [(r["monitor/sqrt_kl"], r[key]) for r in rows if r.get(key) is not None]
        if points:
            xs, ys = zip(*points)
            ax.plot(xs, ys, color=color, marker="o" if len(points) < 30 else None, markersize=3,
                    label=f"{label} (training samples)")
        held = [(r["monitor/sqrt_kl"], r[heldout]) for r in rows if r.get(heldout) is not None]
        if held:
            xs, ys = zip(*held)
            ax.plot(xs, ys, color=color, marker="s", linestyle="none", label=f"{label} (held-out)")
        ax.set_ylabel(label, color=color)
    best_file = run / "best_gold.json"
    if best_file.is_file():
        best_step = json.loads(best_file.read_text()).get("step")
        at = [r["monitor/sqrt_kl"] for r in rows if r["step"] == best_step]
        if at:
            proxy_ax.axvline(at[0], color="gray", linestyle=":", label=f"best gold: step {best_step}")
    proxy_ax.set_xlabel("sqrt(KL(policy || reference)), nats^0.5 per sample")
    proxy_ax.set_title("Proxy and gold against sqrt(KL) (Gao et al. 2022)")
    proxy_ax.grid(alpha=0.3)
    handles = proxy_ax.get_legend_handles_labels()[0] + gold_ax.get_legend_handles_labels()[0]
    proxy_ax.legend(handles, [h.get_label() for h in handles], fontsize=7, loc="best")
    fig.tight_layout()
    path = run / "plots" / "overoptimization.png"
    path.parent.mkdir(exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
