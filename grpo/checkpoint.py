"""Checkpoints: Hugging Face model folders plus the trainer state, written atomically.

A checkpoint is written into ``checkpoints/.tmp-step-N`` and renamed to
``checkpoints/step-N`` only once every file is on disk, with a ``COMPLETE``
marker inside; a kill at any moment leaves either the previous checkpoints or a
``.tmp-*`` folder that nothing reads (and the next save clears away). A run of
several processes adds the model and optimizer shards of every rank
(``save_sharded_checkpoint``), so that it resumes on any number of processes.
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

__all__ = ["save_checkpoint", "save_sharded_checkpoint", "sharded_state_of", "load_trainer_state", "latest_checkpoint",
           "rng_state", "set_rng_state"]


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
    tmp = _begin(run_dir, step, os.getpid())
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    return _publish(tmp, step, trainer_state, keep)


def _begin(run_dir: str | Path, step: int, tag: int) -> Path:
    """A fresh ``checkpoints/.tmp-step-N-TAG`` folder; temp folders of killed saves are cleared first."""
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(".tmp-*"):  # left by a killed save
        shutil.rmtree(stale, ignore_errors=True)
    tmp = root / f".tmp-step-{step}-{tag}"
    tmp.mkdir()
    return tmp


def _publish(tmp: Path, step: int, trainer_state: dict[str, Any], keep: int) -> Path:
    """Add the trainer state and the ``COMPLETE`` marker, flush everything to disk, rename ``tmp`` to
    ``step-N`` and drop all but the ``keep`` newest complete checkpoints."""
    root = tmp.parent
    final = root / f"step-{step}"
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


# ---------------------------------------------------------------- several processes

SHARDED_DIR = "sharded"  # torch.distributed.checkpoint files: model and optimizer, one set of shards per rank
SHARDED_META = "sharded.json"  # what wrote them: format version, step, world size, sharding, torch version
SHARDED_FORMAT = {"format": "rlvr-dcp", "version": 1}


def save_sharded_checkpoint(run_dir: str | Path, step: int, model, optimizer, tokenizer,
                            trainer_state: dict[str, Any], keep: int = 2, sharding: str = "fsdp",
                            parts: dict[str, tuple[Any, Any]] | None = None) -> Path | None:
    """A checkpoint of a run of several processes; every rank calls it (collectives inside).

    The same atomic folder as ``save_checkpoint``, plus the sharded state: each rank writes its
    shards of the model and the optimizer into ``step-N/sharded/`` with ``torch.distributed.checkpoint``
    (a resume reshards them to any number of processes), and rank 0 writes the consolidated Hugging
    Face model folder, the trainer state (optimizer excluded: it is in the shards) and
    ``sharded.json``. ``parts`` ({sub-folder: (model, optimizer)}, e.g. PPO's critic) are saved the
    same way inside ``step-N/<sub-folder>/``. ``COMPLETE`` is written and the folder renamed only
    after every rank's shards are on disk. The run folder must be on a filesystem every node sees.
    Returns the folder (rank 0).
    """
    from grpo import distributed as dist

    info = dist.current()
    parts = parts or {}
    tmp = Path(dist.broadcast_object(str(_begin(run_dir, step, os.getpid())) if info.is_main else None,
                                     "agreeing on the checkpoint folder"))
    dist.save_sharded_state(tmp / SHARDED_DIR, model, optimizer)
    for name, (part, part_optimizer) in parts.items():
        dist.save_sharded_state(tmp / name / SHARDED_DIR, part, part_optimizer)
    full = dist.full_model_state(model)  # rank 0: the consolidated weights; collective under FSDP
    part_states = {name: dist.full_model_state(part) for name, (part, _) in parts.items()}
    final = None
    if info.is_main:
        dist.unwrap(model).save_pretrained(tmp, state_dict=full)
        for name, (part, _) in parts.items():
            dist.unwrap(part).save_pretrained(tmp / name, state_dict=part_states.pop(name))
        tokenizer.save_pretrained(tmp)
        meta = {**SHARDED_FORMAT, "step": step, "world_size": info.world_size, "sharding": sharding,
                "torch": torch.__version__}
        (tmp / SHARDED_META).write_text(json.dumps(meta) + "\n")
        del full
        final = _publish(tmp, step, trainer_state, keep)
    dist.barrier("waiting for rank 0 to finish the checkpoint")  # no rank runs ahead of an unfinished save
    return final


def sharded_state_of(checkpoint: str | Path, parts: tuple[str, ...] = ()) -> Path | None:
    """The sharded-state folder of a checkpoint written by several processes, checked; None for a
    one-process checkpoint. A checkpoint of another format version, or whose parts disagree on the
    step or miss a shard file (also in the ``parts`` sub-folders that ``save_sharded_checkpoint``
    wrote), is refused (``ConfigError``) before anything loads it."""
    from grpo.errors import ConfigError

    folder = Path(checkpoint)
    meta_path = folder / SHARDED_META
    if not meta_path.is_file():
        if (folder / SHARDED_DIR).exists():
            raise ConfigError(f"checkpoint {folder} holds {SHARDED_DIR}/ but no {SHARDED_META}: it mixes files of "
                              "different saves or versions; resume from another checkpoint (delete this one)")
        return None
    meta = json.loads(meta_path.read_text())
    if {k: meta.get(k) for k in SHARDED_FORMAT} != SHARDED_FORMAT:
        raise ConfigError(
            f"checkpoint {folder} was written in sharded format {meta.get('format')!r} version {meta.get('version')!r} "
            f"(by torch {meta.get('torch')}); this rlvr reads {SHARDED_FORMAT['format']!r} version "
            f"{SHARDED_FORMAT['version']}. Resume it with the rlvr that wrote it, or start a new run from its model "
            f"folder: --set model.path={folder}")
    steps = {"folder name": folder.name.removeprefix("step-"), SHARDED_META: str(meta.get("step")),
             "trainer_state.json": str(json.loads((folder / "trainer_state.json").read_text()).get("step"))}
    if len(set(steps.values())) > 1:
        raise ConfigError(f"checkpoint {folder} mixes files of different saves: the step is "
                          f"{', '.join(f'{v} in {k}' for k, v in steps.items())}; resume from another checkpoint")
    from grpo.distributed import missing_shard_files

    for sub in ("", *(f"{part}/" for part in parts)):
        if not (folder / sub / SHARDED_DIR / ".metadata").is_file():
            raise ConfigError(f"checkpoint {folder} has no {sub}{SHARDED_DIR}/.metadata (written by "
                              f"{meta.get('world_size')} processes): it was copied or deleted in part; resume from "
                              "another checkpoint")
        missing = missing_shard_files(folder / sub / SHARDED_DIR)
        if missing:
            raise ConfigError(f"checkpoint {folder} is missing {len(missing)} shard file(s) its metadata names (e.g. "
                              f"{sub}{SHARDED_DIR}/{missing[0]}; written by {meta.get('world_size')} processes): it was "
                              "copied or deleted in part; resume from another checkpoint")
    return folder / SHARDED_DIR


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
