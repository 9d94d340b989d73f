"""The outcome of one sandboxed run: its status, and how the supervisor's facts decide it."""

from __future__ import annotations

import dataclasses
import enum
import json
import os
import signal as _signal
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

from ._protocol import KILLED_MEMORY, KILLED_REQUEST, KILLED_TIMEOUT

if TYPE_CHECKING:
    from ._protocol import Done
    from .limits import Limits


class Status(str, enum.Enum):
    """How a run ended. Only ``SANDBOX_ERROR`` blames the sandbox; every other value is about the program."""

    OK = "ok"
    """Exited with code 0 within every limit."""
    RUNTIME_ERROR = "runtime_error"
    """Exited with a non-zero code or was killed by a signal (uncaught exception, crash, syntax error...)."""
    TIMEOUT = "timeout"
    """Hit the wall-clock deadline or the CPU-time limit."""
    MEMORY_LIMIT = "memory_limit"
    """Ran out of its memory limit (uncaught MemoryError, or killed for resident memory over the limit)."""
    OUTPUT_LIMIT = "output_limit"
    """Wrote more than ``max_output_bytes`` to stdout or stderr."""
    SANDBOX_ERROR = "sandbox_error"
    """The sandbox itself failed; says nothing about the program. Safe to retry."""

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class ExecResult:
    """Result of running one program. ``stdout``/``stderr`` are decoded as UTF-8 (invalid bytes replaced)."""

    status: Status
    exit_code: int | None = None
    """Exit code when the program exited normally; None when it was killed by a signal or never ran."""
    signal: int | None = None
    """Number of the signal that killed the program, if one did."""
    stdout: str = ""
    stderr: str = ""
    duration: float = 0.0
    """Wall-clock seconds, as seen by the caller, from sending the job to having the whole result."""
    cpu_time: float | None = None
    """User + system CPU seconds of the program's processes that were reaped."""
    max_rss_kb: int | None = None
    """Peak resident memory of the largest process, in KiB."""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    error: str | None = None
    """Human-readable detail: what failed for ``sandbox_error``, which limit was hit otherwise."""
    isolation: str = ""
    """Isolation the run had: ``bwrap`` (warm pool), ``bwrap-per-run`` or ``none`` (unsafe)."""

    @property
    def ok(self) -> bool:
        return self.status is Status.OK

    @property
    def signal_name(self) -> str | None:
        if self.signal is None:
            return None
        try:
            return _signal.Signals(self.signal).name
        except ValueError:
            return f"SIG{self.signal}"

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["status"] = self.status.value
        d["signal_name"] = self.signal_name
        return d

    def to_json(self, **kwargs: Any) -> str:
        """JSON, ASCII-only by default: every character past ASCII is escaped, so the text holds no
        line separator of any convention (U+2028, U+2029, U+0085...) and stays one JSON Lines row
        whatever the program printed."""
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ExecResult":
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in names}
        kwargs["status"] = Status(kwargs["status"])
        return cls(**kwargs)

    @classmethod
    def sandbox_error(cls, message: str, *, duration: float = 0.0, isolation: str = "") -> "ExecResult":
        return cls(status=Status.SANDBOX_ERROR, error=message, duration=duration, isolation=isolation)


@dataclass(frozen=True)
class Streams:
    """What the caller read from the program's stdout and stderr, each capped at max_output_bytes."""

    stdout: bytes
    stderr: bytes
    stdout_truncated: bool
    stderr_truncated: bool


def outcome(done: "Done | None", kill_reason: str | None, streams: Streams, duration: float, limits: "Limits",
            isolation: str) -> ExecResult:
    """The ExecResult of a run, from the zygote's answer (None: the worker was killed before
    answering) and the reason the caller asked for a kill, if it did ("timeout" or "output")."""
    common: dict[str, Any] = dict(stdout=streams.stdout.decode("utf-8", "replace"),
                                  stderr=streams.stderr.decode("utf-8", "replace"), duration=duration,
                                  stdout_truncated=streams.stdout_truncated,
                                  stderr_truncated=streams.stderr_truncated, isolation=isolation)
    exit_code = sig = None
    if done is not None and done.wait_status is not None:
        if os.WIFEXITED(done.wait_status):
            exit_code = os.WEXITSTATUS(done.wait_status)
        elif os.WIFSIGNALED(done.wait_status):
            sig = os.WTERMSIG(done.wait_status)
    cpu = done.cpu_s if done is not None else None
    common.update(exit_code=exit_code, signal=sig, cpu_time=cpu,
                  max_rss_kb=done.max_rss_kb if done is not None else None)
    if kill_reason == "output":
        which = "stdout" if streams.stdout_truncated else "stderr"
        return ExecResult(Status.OUTPUT_LIMIT, error=f"{which} went over max_output_bytes={limits.max_output_bytes}",
                          **common)
    killed = done.killed if done is not None else None
    if kill_reason == "timeout" or killed == KILLED_TIMEOUT:
        return ExecResult(Status.TIMEOUT, error=f"wall-clock deadline of {limits.timeout_s:g} s reached", **common)
    if done is None:
        # We killed the whole worker without an answer, and not for a reason of ours.
        return ExecResult(Status.SANDBOX_ERROR, error="sandbox worker stopped answering", **common)
    if done.setup_error is not None:
        return ExecResult(Status.SANDBOX_ERROR, error=f"sandbox setup failed: {done.setup_error}", **common)
    if killed == KILLED_MEMORY:
        return ExecResult(Status.MEMORY_LIMIT,
                          error=f"memory of the run (all its processes together) went over "
                                f"memory_mb={limits.memory_mb}", **common)
    if done.memory_error:
        return ExecResult(Status.MEMORY_LIMIT, error=f"MemoryError (memory_mb={limits.memory_mb})", **common)
    if killed == KILLED_REQUEST:  # we asked for a kill but recorded no reason: cannot happen
        return ExecResult(Status.SANDBOX_ERROR, error="job killed without a reason", **common)
    if sig is not None:
        if sig == _signal.SIGXCPU or (sig == _signal.SIGKILL and cpu is not None and cpu >= limits.effective_cpu_s):
            return ExecResult(Status.TIMEOUT, error=f"CPU-time limit of {limits.effective_cpu_s} s reached", **common)
        return ExecResult(Status.RUNTIME_ERROR, error=f"killed by signal {sig}", **common)
    if exit_code == 0:
        return ExecResult(Status.OK, **common)
    if exit_code is None:
        return ExecResult(Status.SANDBOX_ERROR, error="no exit status for the program", **common)
    return ExecResult(Status.RUNTIME_ERROR, error=f"exit code {exit_code}", **common)
