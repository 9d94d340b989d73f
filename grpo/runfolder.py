"""Owning a run folder: one process at a time, resuming with the settings it was started with, and
stopping cleanly on Ctrl-C or SIGTERM.

* ``RunLock``: an exclusive ``flock`` on ``RUN/.lock`` for as long as the run lives. A second
  ``rlvr train`` (or a ``--resume``) into the same folder is refused with the holder's pid; the
  kernel drops the lock when its holder dies, however it dies, so there is no stale lock to clean.
* ``resume_changes``: what a ``--resume`` changes against the ``config.yaml`` the run was started
  with. Settings that only say how long to run, how often to save, log or evaluate may change
  (and are recorded in ``resumes.jsonl``); anything that changes what is learned is refused.
* ``StopSignals``: SIGINT / SIGTERM ask the loop to stop after the current step (a second
  Ctrl-C stops at once); the loop then saves a checkpoint and says how to continue.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any, Mapping

import yaml

from grpo.errors import ConfigError

# fields a --resume may change: how long, how often to save / log / evaluate, resources; nothing learned
SAFE_ON_RESUME: tuple[str, ...] = (
    "steps", "save_every", "keep_checkpoints", "log_samples", "threads", "output_dir", "report_to",
    "eval.every", "eval.problems", "eval.n", "eval.ks", "eval.bootstrap",
    "rollout.batch_size", "rollout.sync_timeout_s", "rollout.cpu_kv_cache_gb", "rollout.gpu_memory_utilization",
    "rollout.vllm_server_url", "rollout.engine", "rollout.vllm_mode", "rollout.vllm_sleep_level",
    "optim.micro_batch_size", "optim.micro_batch_memory_gb",  # gradient accumulation is exact: the update does not change
    "model.share_prompts",  # exact too: the same log-probs, another order of computation
)


class RunLockedError(ConfigError):
    """Another live process holds the run folder."""


class RunLock:
    """Hold ``run_dir/.lock`` exclusively until ``release`` (or the process ends)."""

    def __init__(self, run_dir: str | Path):
        self.path = Path(run_dir) / ".lock"
        self._fd: int | None = None

    def acquire(self) -> "RunLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise RunLockedError(
                f"run folder {str(self.path.parent)!r} is in use by {holder}; wait for it to finish or stop it "
                "(Ctrl-C saves a checkpoint), then --resume; or choose another --output-dir") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} (since {time.strftime('%Y-%m-%d %H:%M:%S')})\n"
                  .encode(), 0)
        self._fd = fd
        return self

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping) and key != "verifiers":  # reward.verifiers is one value: a weighting
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def resume_changes(saved_yaml: str, resolved: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """``{field: (old, new)}`` for the settings a resume changes; a ``ConfigError`` when one of them
    would change what is learned (the fix: start a new run from the checkpoint)."""
    old = _flatten(yaml.safe_load(saved_yaml) or {})
    new = _flatten(resolved)
    changed = {k: (old.get(k), new.get(k)) for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)}
    refused = [k for k in changed if k not in SAFE_ON_RESUME]
    if refused:
        listing = "; ".join(f"{k}: {changed[k][0]!r} -> {changed[k][1]!r}" for k in refused)
        raise ConfigError(
            f"--resume with changed settings that change what is learned ({listing}). A resumed run keeps the "
            "settings it was started with (config.yaml); only how long it runs and how often it saves, logs and "
            f"evaluates may change ({', '.join(SAFE_ON_RESUME)}). To train on with other settings, start a new "
            "run from the checkpoint: --set model.path=RUN/checkpoints/step-N --output-dir NEW")
    return changed


def record_resume(run_dir: Path, step: int, changes: Mapping[str, tuple[Any, Any]]) -> None:
    """Append the resume and what it changed to ``resumes.jsonl`` (config.yaml then holds the new values)."""
    row = {"resumed_at_step": step, "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
           "changes": {k: {"from": a, "to": b} for k, (a, b) in changes.items()}}
    with open(run_dir / "resumes.jsonl", "a") as fh:
        fh.write(json.dumps(row, default=str) + "\n")


NAN_EXIT_CODE = 4  # a loss, gradient or reward that is not a number stopped the run


class RunStopped(Exception):
    """The run stopped early and said why; ``exit_code`` is what the command should return."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


class StopSignals:
    """While active, SIGINT and SIGTERM request a stop after the current step; a second SIGINT
    stops at once (``KeyboardInterrupt``). Outside the main thread it does nothing."""

    def __init__(self) -> None:
        self.requested: int | None = None  # the signal number that asked
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = signum
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        print(f"\nrlvr: {name}: stopping after this step and saving a checkpoint"
              + (" (Ctrl-C again to stop now)" if signum == signal.SIGINT else ""), file=sys.stderr, flush=True)

    def __enter__(self) -> "StopSignals":
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        except ValueError:  # not the main thread: leave signals alone
            self._previous.clear()
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    @property
    def exit_code(self) -> int:
        return 128 + (self.requested or signal.SIGINT)
