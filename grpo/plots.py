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
        fig, ax = plt.subplots(figsize=(6, 3.5))
        drawn = False
        for key in [k for p in patterns for k in (fnmatch.filter(names, p) if "*" in p else [p])]:
            points = [(r["step"], r[key], r.get(f"{key}_ci_low"), r.get(f"{key}_ci_high"))
                      for r in rows if r.get(key) is not None]
            if points:
                xs, ys, lows, highs = zip(*points)
                line, = ax.plot(xs, ys, marker="o" if len(points) < 30 else None, label=key,
                                linestyle="--" if "maj@" in key else "-")
                band = [(x, lo, hi) for x, lo, hi in zip(xs, lows, highs) if lo is not None and hi is not None]
                if band:
                    bx, blo, bhi = zip(*band)
                    ax.fill_between(bx, blo, bhi, color=line.get_color(), alpha=0.15, linewidth=0)
                drawn = True
        if not drawn:
            ax.text(0.5, 0.5, "no data in this run", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if drawn:
            ax.legend()
        fig.tight_layout()
        fig.savefig(out_dir / name, dpi=100)
        plt.close(fig)
        written.append(out_dir / name)
    return written


def _natural(key: str) -> list:
    """Sort key that puts pass@4 before pass@16."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", key)]
