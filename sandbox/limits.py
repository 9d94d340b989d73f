"""Resource limits applied to every sandboxed program."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping

MiB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """Per-program resource limits. All fields have safe defaults; ``Limits()`` is ready to use.

    Every limit is enforced by the kernel (rlimits, tmpfs sizes) or by a trusted supervisor
    outside the program (wall clock, total memory, output size); none relies on the program's
    cooperation.
    """

    timeout_s: float = 10.0
    """Wall-clock deadline in seconds; at the deadline every process of the run is killed."""
    cpu_s: float | None = None
    """CPU-time limit per process (RLIMIT_CPU) in seconds; None means ceil(timeout_s) + 1."""
    memory_mb: int = 1024
    """Address space per process (RLIMIT_AS), and the memory of all the run's processes together, in
    MiB: with a run cgroup (see sandbox/cgroups.py), all the memory the kernel holds for the run
    (its files in /sandbox, /tmp and /dev/shm, socket and pipe buffers included); without one,
    their resident memory."""
    max_output_bytes: int = 1 * MiB
    """Cap on each of stdout and stderr; the run is killed when a stream goes over it."""
    max_file_bytes: int = 16 * MiB
    """Largest file the program may write (RLIMIT_FSIZE), in bytes."""
    disk_mb: int = 64
    """Size of each of the run's own tmpfs mounts (the working dir, /tmp and /dev/shm), in MiB."""
    max_open_files: int = 256
    """Open file descriptors per process (RLIMIT_NOFILE)."""
    max_processes: int = 64
    """Processes and threads the run may have at once (RLIMIT_NPROC in its own user namespace)."""

    def __post_init__(self) -> None:
        _check_number("timeout_s", self.timeout_s, 0.001, 24 * 3600, "a number of seconds, e.g. 10")
        if self.cpu_s is not None:
            _check_number("cpu_s", self.cpu_s, 0.001, 24 * 3600, "a number of seconds, or None for ceil(timeout_s) + 1")
        _check_int("memory_mb", self.memory_mb, 16, 1 << 20, "MiB, at least 16, e.g. 1024")
        _check_int("max_output_bytes", self.max_output_bytes, 1, 1 << 34, "bytes, e.g. 1048576")
        _check_int("max_file_bytes", self.max_file_bytes, 1, 1 << 40, "bytes, e.g. 16777216")
        _check_int("disk_mb", self.disk_mb, 1, 1 << 20, "MiB, e.g. 64")
        _check_int("max_open_files", self.max_open_files, 16, 1 << 20, "a count, at least 16, e.g. 256")
        _check_int("max_processes", self.max_processes, 1, 1 << 16, "a count, at least 1, e.g. 64")

    @property
    def effective_cpu_s(self) -> int:
        """Whole seconds used for RLIMIT_CPU."""
        if self.cpu_s is None:
            return math.ceil(self.timeout_s) + 1
        return max(1, math.ceil(self.cpu_s))

    def replace(self, **changes: Any) -> "Limits":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Limits":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"Limits: unknown field(s) {unknown}; valid fields are {sorted(names)}")
        return cls(**dict(data))


def _check_number(name: str, value: Any, lo: float, hi: float, fix: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ValueError(f"Limits.{name} must be {fix}; got {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"Limits.{name} must be between {lo} and {hi} ({fix}); got {value!r}")


def _check_int(name: str, value: Any, lo: int, hi: int, fix: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"Limits.{name} must be an integer ({fix}); got {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"Limits.{name} must be between {lo} and {hi} ({fix}); got {value!r}")
