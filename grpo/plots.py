"""PNG plots of a run's metrics.jsonl (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path

from grpo.runlog import read_jsonl

# file name -> (title, metric keys drawn on it)
PLOTS = {
    "reward.png": ("Training reward and accuracy", ["reward/mean", "reward/accuracy"]),
    "heldout_pass_at_1.png": ("Held-out pass@1", ["eval/pass@1"]),
    "kl.png": ("KL to the reference (k3)", ["loss/kl"]),
    "length.png": ("Completion length (tokens)", ["completion/length_mean"]),
    "entropy.png": ("Policy entropy (nats/token)", ["loss/entropy"]),
}


def write_plots(run_dir: str | Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run = Path(run_dir)
    rows = read_jsonl(run / "metrics.jsonl")
    out_dir = run / "plots"
    out_dir.mkdir(exist_ok=True)
    written = []
    for name, (title, keys) in PLOTS.items():
        fig, ax = plt.subplots(figsize=(6, 3.5))
        drawn = False
        for key in keys:
            points = [(r["step"], r[key]) for r in rows if r.get(key) is not None]
            if points:
                xs, ys = zip(*points)
                ax.plot(xs, ys, marker="o" if len(points) < 30 else None, label=key)
                drawn = True
        if not drawn:
            ax.text(0.5, 0.5, "no data in this run", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if drawn:
            ax.legend()
        fig.tight_layout()
        fig.savefig(out_dir / name, dpi=100)
        plt.close(fig)
        written.append(out_dir / name)
    return written
