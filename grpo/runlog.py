"""The run folder's logs: metrics.jsonl, samples.jsonl, and the trackers in ``report_to``: TensorBoard
events in ``RUN/tensorboard`` and Weights & Biases (``pip install 'rlvr[wandb]'``; without a
``WANDB_API_KEY`` or ``WANDB_MODE`` it logs offline into ``RUN/wandb``, for ``wandb sync`` later).
A resumed run continues the same W&B run (its id is kept in ``RUN/wandb_run_id``)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterable, Mapping


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN/inf
    return value


class RunLog:
    """Appends one JSON line per step to ``metrics.jsonl`` and mirrors scalars to TensorBoard."""

    def __init__(self, run_dir: str | Path, resume_step: int | None = None, tensorboard: bool = True,
                 wandb_config: Mapping[str, Any] | None = None):
        self.dir = Path(run_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.metrics_path = self.dir / "metrics.jsonl"
        self.samples_path = self.dir / "samples.jsonl"
        if resume_step is not None:  # drop lines of steps after the checkpoint we resume from
            for path in (self.metrics_path, self.samples_path):
                _truncate_after(path, resume_step)
        else:
            for path in (self.metrics_path, self.samples_path):
                path.write_text("")
        self._tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(log_dir=str(self.dir / "tensorboard"), purge_step=resume_step + 1 if resume_step else None)
        self._wandb = start_wandb(self.dir, wandb_config) if wandb_config is not None else None

    def log(self, step: int, metrics: Mapping[str, Any]) -> None:
        row = {"step": step, **{k: _jsonable(v) for k, v in metrics.items()}}
        with open(self.metrics_path, "a") as fh:
            fh.write(json.dumps(row) + "\n")
        if self._tb is not None:
            for key, value in metrics.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                    self._tb.add_scalar(key, value, step)
            self._tb.flush()
        if self._wandb is not None:
            self._wandb.log({k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
                             and math.isfinite(v)}, step=step, commit=True)

    def samples(self, step: int, rows: Iterable[Mapping[str, Any]]) -> None:
        with open(self.samples_path, "a") as fh:
            for row in rows:
                fh.write(json.dumps({"step": step, **row}) + "\n")

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None


def start_wandb(run_dir: Path, config: Mapping[str, Any]):
    """A W&B run for this run folder: the same one again on resume; offline when no account is set up."""
    import os
    import uuid

    import wandb

    id_file = run_dir / "wandb_run_id"
    run_id = id_file.read_text().strip() if id_file.is_file() else uuid.uuid4().hex[:12]
    id_file.write_text(run_id + "\n")
    mode = None
    if not os.environ.get("WANDB_API_KEY") and not os.environ.get("WANDB_MODE"):
        mode = "offline"  # never prompt for a login in the middle of a training run
    return wandb.init(project=os.environ.get("WANDB_PROJECT", "rlvr"), name=run_dir.name, id=run_id,
                      resume="allow", dir=str(run_dir), config=dict(config), mode=mode,
                      settings=wandb.Settings(silent=True))


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    p = Path(path)
    if not p.is_file():
        return []
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


def _truncate_after(path: Path, step: int) -> None:
    if not path.is_file():
        return
    kept = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line).get("step", 0) <= step]
    path.write_text("".join(line + "\n" for line in kept))
