"""Checkpoints: Hugging Face model folders plus the trainer state, written atomically.

A checkpoint is written into ``checkpoints/.tmp-step-N`` and renamed to
``checkpoints/step-N`` only once every file is on disk, with a ``COMPLETE``
marker inside; a kill at any moment leaves either the previous checkpoints or a
``.tmp-*`` folder that nothing reads (and the next save clears away).
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["save_checkpoint", "load_trainer_state", "latest_checkpoint", "rng_state", "set_rng_state"]


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete ``checkpoints/step-N`` of a run folder, or None."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return None
    steps = []
    for child in root.iterdir():
        m = re.fullmatch(r"step-(\d+)", child.name)
        if m and (child / "COMPLETE").is_file():
            steps.append((int(m.group(1)), child))
    return max(steps)[1] if steps else None


def rng_state() -> dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def save_checkpoint(run_dir: str | Path, step: int, model, tokenizer, trainer_state: dict[str, Any],
                    keep: int = 2) -> Path:
    """Write ``checkpoints/step-{step}`` atomically; keep the ``keep`` newest complete ones."""
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(".tmp-*"):  # left by a killed save
        shutil.rmtree(stale, ignore_errors=True)
    final = root / f"step-{step}"
    tmp = root / f".tmp-step-{step}-{os.getpid()}"
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    torch.save(trainer_state, tmp / "trainer_state.pt")
    (tmp / "trainer_state.json").write_text(json.dumps({"step": step}) + "\n")
    (tmp / "COMPLETE").write_text("ok\n")
    share_like_umask(tmp)
    _fsync_tree(tmp)
    if final.exists():  # re-saving the same step (e.g. after a resume): replace it whole
        shutil.rmtree(final)
    os.replace(tmp, final)
    _fsync_dir(root)
    others = sorted(
        (int(m.group(1)), p) for p in root.iterdir()
        if p != final and (m := re.fullmatch(r"step-(\d+)", p.name)) and (p / "COMPLETE").is_file()
    )
    for _, old in others[: max(0, len(others) - (keep - 1))]:  # the one just written always stays
        shutil.rmtree(old, ignore_errors=True)
    return final


def share_like_umask(folder: Path) -> None:
    """Give every file in ``folder`` the mode a plain ``open`` would (0644 under umask 022): the
    safetensors writer leaves 0600, which other users, and a sandbox or server running as another
    uid, cannot read."""
    umask = os.umask(0)
    os.umask(umask)
    for path in Path(folder).rglob("*"):
        path.chmod((0o777 if path.is_dir() else 0o666) & ~umask)


def load_trainer_state(checkpoint: str | Path) -> dict[str, Any]:
    return torch.load(Path(checkpoint) / "trainer_state.pt", weights_only=False)


def _fsync_tree(path: Path) -> None:
    for file in path.rglob("*"):
        if file.is_file():
            with open(file, "rb") as fh:
                os.fsync(fh.fileno())
    _fsync_dir(path)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
