"""How a worker is started: the bubblewrap command line, privilege dropping, availability checks."""

from __future__ import annotations

import functools
import json
import os
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .cgroups import RunCgroup

ISOLATIONS = ("bwrap", "bwrap-per-run", "none")
SANDBOX_UID = 65534  # "nobody": the uid the sandbox runs as, on the host when we start as root
WORKDIR = "/sandbox"
INODES = 16384  # files + dirs per writable tmpfs
IMPORT_ROOT = "/import"  # where import_paths outside the system dirs appear in the sandbox

# Imported once in each worker, so that programs importing them start faster.
PRELOAD = ["math", "collections", "itertools", "functools", "heapq", "bisect", "string", "re",
           "operator", "array", "copy", "time", "json", "types", "typing"]

INSTALL_HINT = (
    "Install bubblewrap: `sudo apt-get install bubblewrap` (Debian/Ubuntu), "
    "`sudo dnf install bubblewrap` (Fedora), `sudo pacman -S bubblewrap` (Arch). "
    "It also needs unprivileged user namespaces: `sudo sysctl -w kernel.unprivileged_userns_clone=1` "
    "(Debian kernels) and, on Ubuntu 23.10+, `sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0`; "
    "inside Docker, run the container with `--security-opt seccomp=unconfined` or use a VM. "
    "To run WITHOUT isolation anyway (rlimits and a process group only: NOT safe for untrusted code), "
    "pass isolation='none' / allow_unsafe=True, or `--allow-unsafe` on the command line."
)


class SandboxUnavailable(RuntimeError):
    """The requested isolation cannot be provided on this machine. The message says how to fix it."""


def zygote_source() -> str:
    """The zygote's code: the wire protocol (_protocol.py), then the zygote itself (_zygote.py)."""
    here = Path(__file__).parent
    return (here / "_protocol.py").read_text() + "\n\n" + (here / "_zygote.py").read_text()


# The zygote's code reaches it over the control socket, precompiled when the sandbox runs this
# very interpreter: compiling ~40 kB of source would leave ~3 MB of parser debris in the
# zygote's heap, copied into (and torn down from) every program's process.
BOOTSTRAP = ("import marshal,_socket,sys;_s=_socket.socket(1,5,0,int(sys.argv[2]));_c=_s.recv(1<<21);"
             "_s.detach();del _s;exec(marshal.loads(_c[1:]) if _c[:1]==b'M' else compile(_c[1:],'zygote','exec'))")


@functools.lru_cache(maxsize=4)
def _zygote_code_message(source: str, precompiled: bool) -> bytes:
    if precompiled:
        import marshal
        return b"M" + marshal.dumps(compile(source, "zygote", "exec", dont_inherit=True))
    return b"S" + source.encode()


def zygote_message(python: str) -> bytes:
    """The first message on a new worker's control socket: the zygote's code."""
    same = python == os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)
    return _zygote_code_message(zygote_source(), same)


def interpreter() -> str:
    """The real (non-venv) interpreter to run inside the sandbox: standard library only."""
    override = os.environ.get("RLVR_SANDBOX_PYTHON")
    if override:
        return os.path.realpath(override)
    return os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)


def find_bwrap() -> str | None:
    override = os.environ.get("RLVR_SANDBOX_BWRAP")
    if override:
        return override if os.access(override, os.X_OK) else None
    return shutil.which("bwrap")


@functools.lru_cache(maxsize=None)
def bwrap_version(path: str) -> str:
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10)
        return (out.stdout or out.stderr).strip()
    except (OSError, subprocess.SubprocessError) as e:
        return f"unknown ({e})"


def _world_accessible(path: str) -> bool:
    """Can a user with no special rights reach (and list) this path?"""
    p = Path(path)
    for parent in [*reversed(p.parents), p]:
        try:
            st = os.stat(parent)
        except OSError:
            return False
        if stat.S_ISDIR(st.st_mode) and not st.st_mode & stat.S_IXOTH:
            return False
    st = os.stat(p)
    return bool(st.st_mode & stat.S_IROTH)


def _under(path: str, roots: list[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def _memfd(name: str, data: bytes) -> int:
    fd = os.memfd_create(name, 0)
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


@dataclass
class WorkerCommand:
    """Everything subprocess.Popen needs to start one worker."""

    argv: list[str]
    pass_fds: list[int]
    popen_kwargs: dict[str, Any] = field(default_factory=dict)
    close_after_start: list[int] = field(default_factory=list)
    description: str = ""


def build_command(mode: str, ctrl_fd: int, *, fresh_interpreter: bool = False,
                  python: str | None = None, disk_mb: int = 64,
                  preload: list[str] | None = None, import_paths: list[str] | None = None,
                  cgroup: RunCgroup | None = None) -> WorkerCommand:
    """The command that starts one worker. ``cgroup``: the run cgroup its programs join (its
    descriptors are passed through bwrap to the zygote); None for per-process accounting."""
    python = python or interpreter()
    preload = PRELOAD if preload is None else list(preload)
    import_paths = [os.path.realpath(p) for p in import_paths or ()]
    for p in import_paths:
        if not os.path.isdir(p) or os.pathsep in p:
            raise ValueError(f"import_paths: {p!r} must be an existing directory (its name without {os.pathsep!r})")
        if p == "/":
            raise ValueError("import_paths: '/' would expose the whole host; name the directories the code needs")
        if mode != "none" and os.geteuid() == 0 and os.stat(p).st_mode & 0o005 != 0o005:
            raise ValueError(f"import_paths: {p!r} is not readable by other users, and the sandbox runs as uid "
                             f"{SANDBOX_UID}; make it readable (chmod o+rx) or move the code")
    uid = SANDBOX_UID
    if mode == "none" and os.geteuid() == 0 and not all(
            _world_accessible(p) for p in {os.path.dirname(python), os.path.realpath(sys.base_prefix)}):
        uid = -1  # unsafe mode, as root, with an interpreter only root can read: cannot drop to 65534
    def zygote(sandbox_import_paths: list[str]) -> list[str]:
        return [python, "-I", "-S", "-B", "-c", BOOTSTRAP,
                "ns" if mode != "none" else "none", str(ctrl_fd), WORKDIR, str(uid),
                "1" if fresh_interpreter else "0", str(disk_mb), str(INODES), ",".join(preload),
                os.pathsep.join(sandbox_import_paths), cgroup.zygote_arg() if cgroup is not None else ""]

    if mode == "none":
        cgroup = None  # (programs run on the host: no namespaces, no run cgroup)
        return WorkerCommand(zygote(import_paths), [ctrl_fd], {"env": {}, "cwd": "/", "start_new_session": True},
                             description="no isolation (unsafe): rlimits + process group only")
    bwrap = find_bwrap()
    if bwrap is None:
        raise SandboxUnavailable(f"bubblewrap (`bwrap`) was not found on PATH. {INSTALL_HINT}")
    is_root = os.geteuid() == 0
    args: list[str] = [bwrap, "--unshare-all", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID),
                       "--hostname", "sandbox", "--die-with-parent", "--new-session", "--clearenv",
                       # The zygote is pid 1 (nothing else of ours is visible to programs) and keeps
                       # CAP_SYS_ADMIN and CAP_NET_ADMIN *in the sandbox's own user namespace*, to
                       # give each program its own namespaces and mounts, and to bring up the loopback
                       # of a fresh network namespace; programs drop them.
                       "--as-pid-1", "--cap-add", "CAP_SYS_ADMIN", "--cap-add", "CAP_NET_ADMIN"]
    binds: list[tuple[str, str]] = []  # (host source, sandbox destination), read-only
    bound_roots = ["/usr"]
    binds.append(("/usr", "/usr"))
    for d in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(d):
            args += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            binds.append((d, d))
            bound_roots.append(d)
    prefixes = {os.path.realpath(sys.base_prefix), os.path.realpath(sys.base_exec_prefix),
                os.path.dirname(os.path.dirname(python))}
    for pre in sorted(prefixes):
        if pre and pre != "/" and os.path.isdir(pre) and not _under(pre, bound_roots):
            binds.append((pre, pre))
            bound_roots.append(pre)
    # Trusted code the caller asked for (e.g. a verifier and its packages), read-only. Outside the
    # system dirs bound above, each is mounted at /import/N: its host path may lie under /tmp or
    # another place the sandbox replaces, and programs need not learn it.
    sandbox_import_paths = []
    for i, path in enumerate(import_paths):
        dest = path if _under(path, bound_roots) else f"{IMPORT_ROOT}/{i}"
        if dest != path:
            binds.append((path, dest))
        sandbox_import_paths.append(dest)
    for etc in ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime",
                "/etc/alternatives"):
        if os.path.exists(etc):
            binds.append((os.path.realpath(etc) if etc == "/etc/localtime" else etc, etc))
    pass_fds = [ctrl_fd, *(cgroup.fds if cgroup is not None else [])]
    close_after: list[int] = []
    synthetic = {
        "/etc/passwd": f"root:x:0:0:root:/root:/bin/sh\nsandbox:x:{SANDBOX_UID}:{SANDBOX_UID}:sandbox:{WORKDIR}:/bin/sh\n",
        "/etc/group": f"root:x:0:\nsandbox:x:{SANDBOX_UID}:\n",
        "/etc/hosts": "127.0.0.1 localhost sandbox\n::1 localhost\n",
        "/etc/hostname": "sandbox\n",
    }
    for dest, text in synthetic.items():
        fd = _memfd("sandbox-etc", text.encode())
        pass_fds.append(fd)
        close_after.append(fd)
        args += ["--ro-bind-data", str(fd), dest]

    popen_kwargs: dict[str, Any] = {"env": {}, "cwd": "/"}
    stage: list[tuple[str, str]] = []
    if is_root:
        # Never run untrusted code as host uid 0, even in a user namespace: it would own every
        # root-owned file and RLIMIT_NPROC is not enforced for root. bwrap itself runs as
        # SANDBOX_UID, so the sandbox's processes are uid 65534 on the host.
        popen_kwargs.update(user=SANDBOX_UID, group=SANDBOX_UID, extra_groups=[])
        hidden = [src for src, _ in binds if not _world_accessible(src)]
        # The launcher covers stage_root with a tmpfs of its own: it must not hide any source (staged
        # or bound directly by bwrap, which runs after it, in its mount namespace).
        stage_root = next((d for d in ("/tmp", "/run", "/mnt", "/srv", "/media", "/opt")
                           if os.path.isdir(d) and not any(_under(src, [d]) for src, _ in binds)), "/tmp")
        for i, (src, dest) in enumerate(binds):
            if src in hidden:
                stage.append((src, f"{stage_root}/rlvr-sandbox-stage/{i}"))
    stage_map = dict(stage)
    for src, dest in binds:
        args += ["--ro-bind", stage_map.get(src, src), dest]
    # /sandbox, /tmp and /dev/shm get their tmpfs mounts from the zygote, in a mount namespace of
    # its own, so that it may resize and replace them.
    args += ["--proc", "/proc", "--dev", "/dev", "--remount-ro", "/dev",
             "--dir", "/tmp", "--dir", WORKDIR, "--remount-ro", "/", "--chdir", "/", "--"]
    argv = args + zygote(sandbox_import_paths)
    desc = "bubblewrap: new user, pid, net, ipc, uts, cgroup and mount namespaces"
    if stage:
        # Some read-only sources (typically a pyenv interpreter under /root, mode 0700) are not
        # reachable by uid 65534. A root helper makes them reachable in a private mount namespace
        # of its own (the host's mounts are untouched), then drops to 65534 and execs bwrap.
        popen_kwargs.pop("user")
        popen_kwargs.pop("group")
        popen_kwargs.pop("extra_groups")
        spec = {"stage": stage, "stage_root": stage_root, "argv": argv, "uid": SANDBOX_UID, "gid": SANDBOX_UID}
        argv = [sys.executable, "-I", "-S", "-B", "-c", _LAUNCHER, json.dumps(spec)]
    return WorkerCommand(argv, pass_fds, popen_kwargs, close_after, desc)


_LAUNCHER = r"""
import ctypes, json, os, sys
spec = json.loads(sys.argv[1])
libc = ctypes.CDLL(None, use_errno=True)
libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
def check(r, what):
    if r != 0:
        e = ctypes.get_errno()
        sys.stderr.write("sandbox launcher: %s: %s\n" % (what, os.strerror(e)))
        os._exit(70)
check(libc.unshare(0x00020000), "unshare(CLONE_NEWNS)")
check(libc.mount(None, b"/", None, 16384 | (1 << 18), None), "make / private")
root = spec["stage_root"]
check(libc.mount(b"tmpfs", root.encode(), b"tmpfs", 2 | 4 | 8, b"mode=0755,size=1m"), "tmpfs on " + root)
os.makedirs(root + "/rlvr-sandbox-stage", mode=0o755)
for src, dst in spec["stage"]:
    if os.path.isdir(src):
        os.mkdir(dst, 0o755)
    else:
        open(dst, "w").close()
    check(libc.mount(src.encode(), dst.encode(), None, 4096 | 16384, None), "bind " + src)
os.setgroups([])
os.setresgid(spec["gid"], spec["gid"], spec["gid"])
os.setresuid(spec["uid"], spec["uid"], spec["uid"])
os.execv(spec["argv"][0], spec["argv"])
"""


def probe_bwrap() -> tuple[bool, str]:
    """Can bwrap create the namespaces we need here (as the user the sandbox will run as)?"""
    bwrap = find_bwrap()
    if bwrap is None:
        return False, f"bubblewrap (`bwrap`) was not found on PATH. {INSTALL_HINT}"
    argv = [bwrap, "--unshare-all", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID),
            "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "--die-with-parent",
            "--new-session", "--clearenv", "--as-pid-1", "--", "/bin/true"]
    kwargs: dict[str, Any] = {}
    if os.geteuid() == 0:
        kwargs.update(user=SANDBOX_UID, group=SANDBOX_UID, extra_groups=[])
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=20, **kwargs)
    except (OSError, subprocess.SubprocessError) as e:
        return False, f"could not run bwrap: {e}. {INSTALL_HINT}"
    if out.returncode != 0:
        return False, (f"bwrap cannot create namespaces here (exit {out.returncode}: "
                       f"{out.stderr.strip() or 'no message'}). {INSTALL_HINT}")
    return True, f"{bwrap} ({bwrap_version(bwrap)})"


_probe_cache: dict[str, tuple[bool, str]] = {}


def ensure_available(isolation: str) -> None:
    """Raise SandboxUnavailable (saying how to fix it) unless ``isolation`` can be provided."""
    if isolation not in ISOLATIONS:
        raise ValueError(f"isolation must be one of {ISOLATIONS}; got {isolation!r}")
    if isolation == "none":
        return
    if "bwrap" not in _probe_cache:
        _probe_cache["bwrap"] = probe_bwrap()
    ok, msg = _probe_cache["bwrap"]
    if not ok:
        raise SandboxUnavailable(msg)


def resolve_isolation(isolation: str, allow_unsafe: bool) -> str:
    """The isolation to use: the requested one, or ``none`` if unavailable and the caller opted in."""
    try:
        ensure_available(isolation)
        return isolation
    except SandboxUnavailable as e:
        if not allow_unsafe:
            raise
        import warnings
        warnings.warn(f"sandbox: running WITHOUT isolation (allow_unsafe): {e}", RuntimeWarning, stacklevel=3)
        return "none"
