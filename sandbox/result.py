"""The outcome of one sandboxed run."""

from __future__ import annotations

import dataclasses
import enum
import json
import signal as _signal
from dataclasses import dataclass
from typing import Any, Mapping


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
        kwargs.setdefault("ensure_ascii", False)
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
