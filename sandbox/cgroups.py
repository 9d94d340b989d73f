"""Memory (and process) accounting the program cannot hide from: a cgroup per worker for its runs.

Each worker gets a run cgroup ``<the caller's own cgroup>/rlvr-sandbox-<caller pid>/w<N>``, in the
memory and pids hierarchies of cgroup v1, or in a delegated cgroup v2 tree. The worker's zygote
stays where the caller is; every program's pid 1 moves itself into the run cgroup (through a
descriptor opened here, before it runs any program code), so all the run's processes - and the
memory they make the kernel hold: anonymous and shared pages, tmpfs files, pipe and socket
buffers, page tables, pages pinned in pipes after the process unmapped them - are charged there,
whatever the processes do to /proc. The kernel enforces ``memory_mb`` on that total (its OOM killer
acts inside the cgroup only); the zygote watches the cgroup's OOM-kill counter and ends the run as
``memory_limit`` on the first kill. Nesting under the caller's own cgroup keeps the runs inside
whatever limit the caller itself has.

Where no such cgroup can be had (not root on cgroup v1, no delegation on v2, or
``RLVR_SANDBOX_CGROUP=off``), the zygote falls back to per-process accounting from /proc (see
_zygote.over_memory) and refuses vmsplice; ``python -m sandbox check`` says which is active.

``RLVR_SANDBOX_CGROUP``: ``auto`` (default), ``off``, or the path of a cgroup v2 directory delegated
to this user (its ``cgroup.controllers`` lists memory and pids, and no process lives in it), e.g.
made with ``systemd-run --user -p Delegate=yes --scope`` and a leaf for the caller itself.
"""

from __future__ import annotations

import atexit
import itertools
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

MiB = 1024 * 1024
ENV = "RLVR_SANDBOX_CGROUP"
PREFIX = "rlvr-sandbox-"
RECLAIM_ABOVE = 16 * MiB   # left charged after a run (page cache the program read first): reclaimed


@dataclass(frozen=True)
class CgroupSupport:
    """Where this process can make run cgroups, or why it cannot."""

    version: int | None        # 1, 2, or None: no cgroup, per-process accounting
    memory_base: str | None    # the directory that holds this process's rlvr-sandbox-<pid> (memory, or v2)
    pids_base: str | None      # the same in the v1 pids hierarchy; None: no pids controller (v1)
    detail: str                # one line for `python -m sandbox check`

    @property
    def active(self) -> bool:
        return self.version is not None


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def parse_mountinfo(text: str) -> list[tuple[str, str, str, str]]:
    """(mount point, root inside its filesystem, fs type, super options) of every mount listed in
    a /proc/PID/mountinfo text."""
    out = []
    for line in text.splitlines():
        left, _, right = line.partition(" - ")
        fields, rfields = left.split(), right.split()
        if len(fields) >= 5 and len(rfields) >= 3:
            out.append((_unescape(fields[4]), _unescape(fields[3]), rfields[0], rfields[2]))
    return out


def _unescape(path: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), path)


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """Controller (or "" for v2) -> cgroup path, from a /proc/PID/cgroup text."""
    out = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            for controller in parts[1].split(",") if parts[1] else [""]:
                out[controller] = parts[2]
    return out


def cgroup_dir(mounts, fstype: str, option: str | None, cgroup_path: str) -> str | None:
    """The directory of ``cgroup_path`` under a mount of that hierarchy visible here."""
    for point, root, fs, opts in mounts:
        if fs != fstype or (option is not None and option not in opts.split(",")):
            continue
        if cgroup_path == root or cgroup_path.startswith(root.rstrip("/") + "/"):
            rel = cgroup_path[len(root.rstrip("/")):].lstrip("/")
            return os.path.join(point, rel) if rel else point
    return None


def _writable_dir(path: str) -> bool:
    return os.path.isdir(path) and os.access(path, os.W_OK | os.X_OK)


def detect(setting: str | None = None) -> CgroupSupport:
    """Find where run cgroups can be made here (no side effects)."""
    setting = (os.environ.get(ENV, "auto") if setting is None else setting).strip() or "auto"
    if setting == "off":
        return CgroupSupport(None, None, None, f"{ENV}=off")
    mounts = parse_mountinfo(_read("/proc/self/mountinfo"))
    own = parse_proc_cgroup(_read("/proc/self/cgroup"))
    if setting != "auto":
        return _detect_v2(setting, f"{ENV}={setting}")
    mem_path = own.get("memory")
    if mem_path is not None:
        mem = cgroup_dir(mounts, "cgroup", "memory", mem_path)
        if mem is None:
            return CgroupSupport(None, None, None, "cgroup v1 memory hierarchy is not mounted here")
        if not _writable_dir(mem):
            return CgroupSupport(None, None, None, f"cgroup v1 memory cgroup {mem} is not writable by uid "
                                 f"{os.geteuid()} (run as root, or use cgroup v2 delegation)")
        pids = None
        if own.get("pids") is not None:
            pids = cgroup_dir(mounts, "cgroup", "pids", own["pids"])
            if pids is not None and not _writable_dir(pids):
                pids = None
        return CgroupSupport(1, mem, pids, f"cgroup v1: memory under {mem}"
                             + (f", pids under {pids}" if pids else " (no writable pids cgroup)"))
    v2_path = own.get("")
    if v2_path is None:
        return CgroupSupport(None, None, None, "this kernel shows no cgroups (/proc/self/cgroup)")
    here = cgroup_dir(mounts, "cgroup2", None, v2_path)
    if here is None:
        return CgroupSupport(None, None, None, "cgroup v2 is not mounted here")
    if v2_path != "/":
        return CgroupSupport(None, None, None, f"cgroup v2: this process's cgroup {here} holds processes, so "
                             f"no controller can be enabled below it; set {ENV} to a delegated cgroup "
                             "(see sandbox/README.md)")
    return _detect_v2(here, "cgroup v2 root")


def _detect_v2(path: str, origin: str) -> CgroupSupport:
    try:
        controllers = Path(path, "cgroup.controllers").read_text().split()
    except OSError as e:
        return CgroupSupport(None, None, None, f"{origin}: {path} is not a cgroup v2 directory ({e.strerror})")
    if "memory" not in controllers:
        return CgroupSupport(None, None, None, f"{origin}: the memory controller is not available in {path}")
    if not _writable_dir(path):
        return CgroupSupport(None, None, None, f"{origin}: {path} is not writable by uid {os.geteuid()}")
    return CgroupSupport(2, path, None, f"cgroup v2: memory{' and pids' if 'pids' in controllers else ''} under {path}")


_supports: dict[str, CgroupSupport] = {}
_lock = threading.Lock()
_ids = itertools.count(1)


def support() -> CgroupSupport:
    """detect(), once per process and value of RLVR_SANDBOX_CGROUP."""
    setting = os.environ.get(ENV, "auto")
    with _lock:
        if setting not in _supports:
            _supports[setting] = detect(setting)
        return _supports[setting]


def _write(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _ours(base: str) -> str:
    return os.path.join(base, f"{PREFIX}{os.getpid()}")


def _prepare_base(sup: CgroupSupport) -> None:
    """Make rlvr-sandbox-<pid> (and, on v2, turn its controllers on); remove those of dead callers."""
    for base in filter(None, (sup.memory_base, sup.pids_base)):
        _remove_stale(base)
        ours = _ours(base)
        if sup.version == 2:
            _enable_controllers(base)
        os.makedirs(ours, exist_ok=True)
        if sup.version == 2:
            _enable_controllers(ours)


def _enable_controllers(path: str) -> None:
    enabled = Path(path, "cgroup.subtree_control").read_text().split()
    available = Path(path, "cgroup.controllers").read_text().split()
    want = [c for c in ("memory", "pids") if c in available and c not in enabled]
    if want:
        _write(os.path.join(path, "cgroup.subtree_control"), " ".join("+" + c for c in want))


def _remove_stale(base: str) -> None:
    """rlvr-sandbox-<pid> dirs of callers that are gone (killed before their atexit ran)."""
    try:
        names = os.listdir(base)
    except OSError:
        return
    for name in names:
        m = re.fullmatch(re.escape(PREFIX) + r"(\d+)", name)
        if m and int(m.group(1)) != os.getpid() and not os.path.exists(f"/proc/{m.group(1)}"):
            _rmtree_cgroup(os.path.join(base, name))


def _rmtree_cgroup(path: str) -> bool:
    """rmdir a cgroup and its children (cgroup dirs are removed with rmdir, never unlink)."""
    try:
        for entry in os.scandir(path):
            if entry.is_dir(follow_symlinks=False):
                _rmtree_cgroup(entry.path)
        os.rmdir(path)
        return True
    except OSError:
        return False


@atexit.register
def _remove_ours() -> None:
    for s in list(_supports.values()):
        for base in filter(None, (s.memory_base, s.pids_base)):
            _rmtree_cgroup(_ours(base))


class RunCgroup:
    """The cgroup(s) one worker's programs run in, and the descriptors its zygote gets for them.

    ``procs_fds``: cgroup.procs, opened for writing (a program's pid 1 writes "0" to join);
    ``events_fd``: the file whose ``oom_kill N`` line counts OOM kills (v1 memory.oom_control, v2
    memory.events), opened for reading.
    """

    def __init__(self, sup: CgroupSupport):
        assert sup.active
        self.support = sup
        with _lock:
            _prepare_base(sup)
        name = f"w{next(_ids)}"
        self.memory_dir = os.path.join(_ours(sup.memory_base), name)
        self.pids_dir = os.path.join(_ours(sup.pids_base), name) if sup.pids_base else None
        self.procs_fds: list[int] = []
        self.events_fd = -1
        self._limits: tuple[int, int] | None = None
        try:
            for d in filter(None, (self.memory_dir, self.pids_dir)):
                os.mkdir(d)
            v1 = sup.version == 1
            if not v1 and os.path.exists(os.path.join(self.memory_dir, "memory.swap.max")):
                _write(os.path.join(self.memory_dir, "memory.swap.max"), "0")
            for d in filter(None, (self.memory_dir, self.pids_dir)):
                self.procs_fds.append(os.open(os.path.join(d, "cgroup.procs"), os.O_WRONLY | os.O_CLOEXEC))
            self.events_fd = os.open(os.path.join(self.memory_dir, "memory.oom_control" if v1 else "memory.events"),
                                     os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            self.remove()
            raise

    def zygote_arg(self) -> str:
        """How the zygote learns the descriptors: "procs,procs...;events"."""
        return ",".join(map(str, self.procs_fds)) + ";" + str(self.events_fd)

    @property
    def fds(self) -> list[int]:
        return [*self.procs_fds, self.events_fd]

    def set_limits(self, memory_mb: int, max_processes: int) -> None:
        """Limits for the next run (written only when they change): memory of all its processes
        together, swap included (v1 memsw; v2 swap is off), TCP buffers, and tasks (pids)."""
        if self._limits == (memory_mb, max_processes):
            return
        limit = memory_mb * MiB
        d = self.memory_dir
        if self.support.version == 1:
            names = ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes"]
            names = [n for n in names if os.path.exists(os.path.join(d, n))]
            # memsw must stay >= the memory limit: raise it first, lower it last.
            old = int(Path(d, "memory.limit_in_bytes").read_text())
            for n in (reversed(names) if limit > old else names):
                _write(os.path.join(d, n), str(limit))
            # v1 counts TCP and UDP buffers apart (and only once this is set, before any run): a
            # quarter of memory_mb more for them (past it, TCP applies backpressure).
            _write(os.path.join(d, "memory.kmem.tcp.limit_in_bytes"), str(max(limit // 4, 4 * MiB)))
        else:
            _write(os.path.join(d, "memory.max"), str(limit))
        pids_dir = self.pids_dir or (d if self.support.version == 2 else None)
        if pids_dir and os.path.exists(os.path.join(pids_dir, "pids.max")):
            _write(os.path.join(pids_dir, "pids.max"), str(max_processes))
        self._limits = (memory_mb, max_processes)

    def usage_bytes(self) -> int:
        name = "memory.usage_in_bytes" if self.support.version == 1 else "memory.current"
        return int(Path(self.memory_dir, name).read_text())

    def tidy(self) -> None:
        """Between runs (no process in the cgroup): give back what the last run left charged
        (page cache it read first), so that the next run starts with its whole limit."""
        try:
            if self.usage_bytes() <= RECLAIM_ABOVE:
                return
            if self.support.version == 1:
                _write(os.path.join(self.memory_dir, "memory.force_empty"), "0")
            else:
                _write(os.path.join(self.memory_dir, "memory.reclaim"), str(self.usage_bytes()))
        except OSError:
            pass  # (best effort: what is left is reclaimable, the kernel takes it back under pressure)

    def remove(self) -> bool:
        """Close the descriptors and remove the cgroup dirs (once no process is left in them)."""
        for fd in [*self.procs_fds, self.events_fd]:
            if fd >= 0:
                os.close(fd)
        self.procs_fds, self.events_fd = [], -1
        ok = True
        for d in filter(None, (self.memory_dir, self.pids_dir)):
            try:
                os.rmdir(d)
            except FileNotFoundError:
                pass
            except OSError:
                ok = False
        return ok


def make_run_cgroup() -> tuple[RunCgroup | None, str]:
    """A run cgroup for a new worker, or None (per-process accounting) where none can be had;
    and one line saying which."""
    sup = support()
    if not sup.active:
        return None, f"per-process fallback ({sup.detail})"
    try:
        return RunCgroup(sup), sup.detail
    except OSError as e:
        return None, f"per-process fallback (could not make a run cgroup under {sup.memory_base}: {e})"
