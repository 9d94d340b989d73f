"""The trusted side: warm worker pool, job dispatch, deadlines, output capping."""

from __future__ import annotations

import atexit
import fcntl
import os
import queue
import select
import signal
import socket
import struct
import subprocess
import threading
import time
import weakref
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Union

from . import _protocol as proto
from . import isolation as iso
from .isolation import SandboxUnavailable
from .limits import Limits
from .result import ExecResult, Status

KILL_GRACE_S = 0.5        # after asking the worker to kill a job, wait this long before killing the worker
DRAIN_S = 0.25            # after the job ended, wait at most this long for the output pipes to close
START_TIMEOUT_S = 30.0    # a worker that is not ready by then counts as failed
TEARDOWN_WAIT_S = 10.0    # after killing a worker, wait at most this long for all of its processes to be gone

Files = Mapping[str, Union[str, bytes]]


@dataclass(frozen=True)
class Job:
    program: str
    stdin: bytes = b""
    files: tuple[tuple[str, bytes], ...] = ()
    limits: Limits = Limits()


def make_job(program: str | bytes, stdin: str | bytes | None = None, files: Files | None = None,
             limits: Limits | None = None) -> Job:
    if isinstance(program, bytes):
        program = program.decode("utf-8", "surrogateescape")
    if not isinstance(program, str):
        raise TypeError(f"program must be str (Python source); got {type(program).__name__}")
    if stdin is None:
        stdin = b""
    if isinstance(stdin, str):
        stdin = stdin.encode("utf-8", "surrogateescape")
    if not isinstance(stdin, (bytes, bytearray)):
        raise TypeError(f"stdin must be str or bytes; got {type(stdin).__name__}")
    out = []
    for name, data in (files or {}).items():
        _check_file_name(name)
        if isinstance(data, str):
            data = data.encode("utf-8")
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError(f"files[{name!r}] must be str or bytes; got {type(data).__name__}")
        out.append((name, bytes(data)))
    if limits is None:
        limits = Limits()
    if not isinstance(limits, Limits):
        raise TypeError(f"limits must be a sandbox.Limits; got {type(limits).__name__}")
    return Job(program, bytes(stdin), tuple(out), limits)


def _check_file_name(name: str) -> None:
    if not isinstance(name, str) or not name or name.startswith("/") or "\0" in name:
        raise ValueError(f"files: {name!r} must be a relative path inside the working dir, e.g. 'data/input.txt'")
    parts = name.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"files: {name!r} must not contain '', '.' or '..' components")
    if name == "main.py":
        raise ValueError("files: 'main.py' is the program itself; choose another name")


_SEALS = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE


def _memfd(name: str, data: bytes) -> int:
    """An anonymous in-memory file holding ``data``, positioned at its start, sealed: the
    program gets it (as stdin) read-write, and must not use it to hold memory of its own."""
    fd = os.memfd_create(name, os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    os.lseek(fd, 0, os.SEEK_SET)
    fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SEALS)
    return fd


class _WorkerDied(Exception):
    pass


_LIVE: "weakref.WeakSet[Worker]" = weakref.WeakSet()


def live_workers() -> list["Worker"]:
    """Workers of this process whose sandbox is running (for monitoring and tests)."""
    return [w for w in list(_LIVE) if w.proc is not None]


class Worker:
    """One isolated zygote process (inside its own bwrap) and the socket to talk to it.

    Not thread-safe: each worker is driven by one thread at a time.
    """

    def __init__(self, isolation: str, *, fresh_interpreter: bool = False, python: str | None = None,
                 preload: list[str] | None = None, import_paths: list[str] | None = None, disk_mb: int = 64):
        self.isolation = isolation
        self.import_paths = import_paths
        self.fresh_interpreter = fresh_interpreter
        self.python = python
        self.preload = preload
        self.disk_mb = disk_mb
        self.proc: subprocess.Popen | None = None
        self.sock: socket.socket | None = None
        self.info: dict[str, Any] = {}
        self._next_id = 0
        self._inits: list[int] = []   # pidfds of the worker's pid-namespace init (the zygote)
        self._dying: list[int] = []   # the same, for killed workers whose processes may still be exiting

    # ---- lifecycle -------------------------------------------------------------------------
    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None and self.sock is not None

    def start(self, timeout: float = START_TIMEOUT_S) -> None:
        """Start the worker and wait until it is ready. Raises SandboxUnavailable on failure."""
        self.kill()
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            cmd = iso.build_command(self.isolation, child.fileno(), fresh_interpreter=self.fresh_interpreter,
                                    python=self.python, preload=self.preload, import_paths=self.import_paths,
                                    disk_mb=self.disk_mb)
            try:
                self.proc = subprocess.Popen(cmd.argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                             stderr=subprocess.PIPE, pass_fds=cmd.pass_fds, close_fds=True,
                                             **cmd.popen_kwargs)
            finally:
                for fd in cmd.close_after_start:
                    os.close(fd)
        except OSError as e:
            parent.close()
            raise SandboxUnavailable(f"could not start a sandbox worker: {e}") from e
        finally:
            child.close()
        self.sock = parent
        _LIVE.add(self)
        try:
            parent.send(iso.zygote_message(self.python or iso.interpreter()))
        except OSError as e:
            err = self._stderr_tail()
            self.kill()
            raise SandboxUnavailable(f"could not start a sandbox worker: {e} {err}") from e
        os.set_blocking(self.proc.stderr.fileno(), False)
        deadline = time.monotonic() + timeout
        poller = select.poll()  # (not select(): the caller may have more than 1024 files open)
        poller.register(parent.fileno(), select.POLLIN)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                err = self._stderr_tail()
                self.kill()
                raise SandboxUnavailable(f"sandbox worker did not start within {timeout:.0f} s. {err}")
            if not poller.poll(remaining * 1000):
                continue
            try:
                raw = parent.recv(65536)
            except ConnectionError:
                raw = b""
            if not raw:
                self.proc.wait(timeout=5) if self.proc else None
                err = self._stderr_tail()
                self.kill()
                raise SandboxUnavailable(f"sandbox worker exited during start-up: {err or 'no message'}. "
                                         f"{iso.INSTALL_HINT if self.isolation != 'none' else ''}".strip())
            text = raw[1:].decode("utf-8", "replace")
            if raw[0] == proto.OP_READY:
                self.info = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
                if self.info.get("preload_failed") and self.preload is not None:  # modules the caller named
                    self.kill()
                    raise SandboxUnavailable("sandbox worker could not import its preload modules: "
                                             f"{self.info['preload_failed']}; check import_paths")
                self._inits = self._watch_inits()
                return
            if raw[0] == proto.OP_FATAL:
                self.kill()
                raise SandboxUnavailable(f"sandbox worker cannot isolate programs: {text}. {iso.INSTALL_HINT}")

    def _stderr_tail(self) -> str:
        if self.proc is None or self.proc.stderr is None:
            return ""
        try:
            data = self.proc.stderr.read(65536) or b""
        except (OSError, ValueError):
            data = b""
        return data.decode("utf-8", "replace").strip()[-2000:]

    def _watch_inits(self) -> list[int]:
        """pidfds of bwrap's child, pid 1 of the worker's pid namespace: it is reported as exited
        only once every process of that namespace (programs, their daemons) is gone.

        As root, also pins the worker's OOM score at the maximum: every program writes 1000 to
        its own oom_score_adj (if memory runs out, programs die first), but without this it could
        write 0 back - only a writer with CAP_SYS_RESOURCE on the host sets the floor."""
        if self.proc is None or self.isolation == "none":
            return []
        pid = self.proc.pid
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                children = [int(c) for c in f.read().split()]
        except (OSError, ValueError):  # a kernel without CONFIG_PROC_CHILDREN
            children = []
            for name in os.listdir("/proc"):
                if name.isdigit():
                    try:
                        with open(f"/proc/{name}/stat", "rb") as f:
                            stat = f.read()
                        if int(stat[stat.rindex(b")") + 2:].split()[1]) == pid:
                            children.append(int(name))
                    except (OSError, ValueError):
                        pass
        if os.geteuid() == 0:
            for p in [pid, *children]:
                try:
                    with open(f"/proc/{p}/oom_score_adj", "w") as f:
                        f.write("1000")
                except OSError:
                    pass
        fds = []
        for child in children:
            try:
                fds.append(os.pidfd_open(child))
            except (OSError, AttributeError):
                pass
        return fds

    def wait_teardown(self, timeout: float = TEARDOWN_WAIT_S) -> None:
        """Wait (at most ``timeout`` s) until every process of the killed sandboxes is gone.

        Killing is immediate, but the kernel can take a while to tear processes down (a second
        or more for many processes with many memory mappings each)."""
        fds, self._dying = self._dying, []
        deadline = time.monotonic() + timeout
        for fd in fds:
            try:
                remaining = deadline - time.monotonic()
                if remaining > 0:
                    poller = select.poll()
                    poller.register(fd, select.POLLIN)
                    poller.poll(remaining * 1000)
            finally:
                os.close(fd)

    def kill(self, wait: bool = True) -> None:
        """Kill the worker and everything in it (its whole pid namespace dies with bwrap); with
        ``wait``, also wait until all of that is gone (see wait_teardown)."""
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        proc, self.proc = self.proc, None
        _LIVE.discard(self)
        if proc is not None:
            if proc.poll() is None:
                try:
                    proc.send_signal(signal.SIGKILL)
                except OSError:
                    pass
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            if proc.stderr is not None:
                proc.stderr.close()
        self._dying += self._inits
        self._inits = []
        if wait:
            self.wait_teardown()

    def close(self) -> None:
        if self.sock is not None and self.alive:
            try:
                self.sock.send(bytes([proto.OP_EXIT]))
            except OSError:
                pass
            try:
                assert self.proc is not None
                self.proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                pass
        self.kill()

    # ---- running a job -----------------------------------------------------------------------
    def run(self, job: Job) -> ExecResult:
        t0 = time.monotonic()
        for attempt in (0, 1):
            if not self.alive:
                try:
                    self.start()
                except SandboxUnavailable as e:
                    return ExecResult.sandbox_error(str(e), duration=time.monotonic() - t0,
                                                    isolation=self.isolation)
                t0 = time.monotonic()  # worker start-up is not the program's time
            try:
                return self._run(job, t0)
            except _WorkerDied as e:
                self.kill(wait=False)
                if attempt == 1 or e.args[1]:  # started jobs are not retried
                    return ExecResult.sandbox_error(f"sandbox worker died: {e.args[0]}",
                                                    duration=time.monotonic() - t0, isolation=self.isolation)
        raise AssertionError("unreachable")

    def _run(self, job: Job, t0: float) -> ExecResult:
        assert self.sock is not None
        lim = job.limits
        self._next_id += 1
        job_id = self._next_id
        program = job.program.encode("utf-8", "surrogateescape")
        payload = proto.files_payload(program, job.files) if job.files else program
        header = bytes([proto.OP_JOB]) + struct.pack(
            proto.JOB_FMT, job_id, lim.timeout_s, lim.memory_mb, lim.effective_cpu_s, lim.max_file_bytes,
            lim.disk_mb, lim.max_open_files, lim.max_processes + 1, len(payload), bool(job.files))
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        stdin_fd = _memfd("stdin", job.stdin) if job.stdin else os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        sent = [_memfd("payload", payload), stdin_fd, out_w, err_w]
        try:
            socket.send_fds(self.sock, [header], sent)
        except OSError as e:
            for fd in (out_r, err_r):
                os.close(fd)
            raise _WorkerDied(f"could not send the job ({e})", False)
        finally:
            for fd in sent:
                os.close(fd)
        start = time.monotonic()
        deadline = start + lim.timeout_s
        cap = lim.max_output_bytes
        bufs = {out_r: bytearray(), err_r: bytearray()}
        truncated = {out_r: False, err_r: False}
        open_fds = {out_r, err_r}
        for fd in open_fds:
            os.set_blocking(fd, False)
        poller = select.poll()
        sock_fd = self.sock.fileno()
        for fd in (out_r, err_r, sock_fd):
            poller.register(fd, select.POLLIN)
        done: dict[str, Any] | None = None
        kill_reason: str | None = None     # why *we* asked for the kill
        kill_sent_at: float | None = None
        worker_killed = False
        try:
            while done is None:
                now = time.monotonic()
                if kill_sent_at is None and now >= deadline:
                    kill_reason = kill_reason or "timeout"
                    kill_sent_at = now
                    self._send_kill(job_id)
                if kill_sent_at is not None and now >= kill_sent_at + KILL_GRACE_S:
                    # The worker did not confirm the kill in time: kill the whole worker. (Not
                    # waiting for its processes to be gone: the result must not wait for that.)
                    self.kill(wait=False)
                    worker_killed = True
                    break
                wait_until = kill_sent_at + KILL_GRACE_S if kill_sent_at is not None else deadline
                events = poller.poll(max(0.0, wait_until - now) * 1000 + 1)
                for fd, ev in events:
                    if fd in bufs:
                        if self._read_into(fd, bufs, cap, truncated, open_fds, poller):
                            if kill_sent_at is None:
                                kill_reason = "output"
                                kill_sent_at = time.monotonic()
                                self._send_kill(job_id)
                    else:
                        try:
                            raw = self.sock.recv(65536)
                        except OSError:
                            raw = b""
                        if not raw:
                            if kill_sent_at is not None:
                                self.kill(wait=False)
                                worker_killed = True
                                break
                            raise _WorkerDied("connection lost during the job: " + self._stderr_tail(), True)
                        if raw[0] == proto.OP_DONE and len(raw) >= 1 + proto.DONE_SIZE:
                            fields = struct.unpack_from(proto.DONE_FMT, raw, 1)
                            if fields[0] == job_id:
                                done = {"wstatus": fields[1] if fields[1] >= 0 else None,
                                        "killed": fields[2], "cpu_s": fields[3], "maxrss_kb": fields[4],
                                        "memerr": bool(fields[5] & proto.FLAG_MEMERR),
                                        "setup_error": (raw[1 + proto.DONE_SIZE:].decode("utf-8", "replace")
                                                        or "unknown") if fields[5] & proto.FLAG_SETUP_ERROR
                                        else None}
                        elif raw[0] == proto.OP_FATAL:
                            # The worker could not clean up after its previous program (or could
                            # not read this job): this job did not run; retried on a new worker.
                            raise _WorkerDied(raw[1:].decode("utf-8", "replace"), False)
                if worker_killed:
                    break
            # Collect what is left in the pipes. After a DONE, all of the program's processes are
            # gone and the pipes are at EOF at once. After we killed the worker, its processes may
            # take a while to die (exiting a process with many mappings is slow): take what is
            # there now, never wait for them.
            poller.unregister(sock_fd)
            drain_until = time.monotonic() + (0.0 if worker_killed else DRAIN_S)
            while open_fds:
                events = poller.poll(max(0.0, drain_until - time.monotonic()) * 1000)
                if not events:
                    break
                for fd, ev in events:
                    if fd in open_fds:
                        self._read_into(fd, bufs, cap, truncated, open_fds, poller)
        finally:
            os.close(out_r)
            os.close(err_r)
        duration = time.monotonic() - t0
        return self._result(done, kill_reason, worker_killed, bufs[out_r], bufs[err_r], truncated[out_r],
                            truncated[err_r], duration, lim)

    @staticmethod
    def _read_into(fd, bufs, cap, truncated, open_fds, poller) -> bool:
        """Read what is available; return True if the stream just went over the cap."""
        buf = bufs[fd]
        while True:
            try:
                chunk = os.read(fd, 1 << 16)
            except BlockingIOError:
                return False
            if not chunk:
                open_fds.discard(fd)
                poller.unregister(fd)
                return False
            room = cap - len(buf)
            if len(chunk) > room:
                buf += chunk[:max(room, 0)]
                truncated[fd] = True
                open_fds.discard(fd)
                poller.unregister(fd)
                return True
            buf += chunk

    def _send_kill(self, job_id: int) -> None:
        try:
            assert self.sock is not None
            self.sock.send(bytes([proto.OP_KILL]) + struct.pack("<q", job_id))
        except OSError:
            pass

    def _result(self, done, kill_reason, worker_killed, out, err, out_trunc, err_trunc, duration,
                lim: Limits) -> ExecResult:
        common = dict(stdout=out.decode("utf-8", "replace"), stderr=err.decode("utf-8", "replace"),
                      duration=duration, stdout_truncated=out_trunc, stderr_truncated=err_trunc,
                      isolation=self.isolation)
        exit_code = sig = None
        cpu = rss = None
        if done is not None:
            cpu = done.get("cpu_s")
            rss = done.get("maxrss_kb")
            ws = done.get("wstatus")
            if ws is not None:
                if os.WIFEXITED(ws):
                    exit_code = os.WEXITSTATUS(ws)
                elif os.WIFSIGNALED(ws):
                    sig = os.WTERMSIG(ws)
        common.update(exit_code=exit_code, signal=sig, cpu_time=cpu, max_rss_kb=rss)
        if kill_reason == "output":
            which = "stdout" if out_trunc else "stderr"
            return ExecResult(Status.OUTPUT_LIMIT, error=f"{which} went over max_output_bytes={lim.max_output_bytes}",
                              **common)
        killed = (done or {}).get("killed")
        if kill_reason == "timeout" or killed == proto.KILLED_TIMEOUT:
            return ExecResult(Status.TIMEOUT, error=f"wall-clock deadline of {lim.timeout_s:g} s reached", **common)
        if done is None:
            # We killed the whole worker without an answer, and not for a reason of ours.
            return ExecResult(Status.SANDBOX_ERROR, error="sandbox worker stopped answering", **common)
        if done.get("setup_error"):
            return ExecResult(Status.SANDBOX_ERROR, error=f"sandbox setup failed: {done['setup_error']}", **common)
        if killed == proto.KILLED_MEMORY:
            return ExecResult(Status.MEMORY_LIMIT,
                              error=f"resident memory of the run went over memory_mb={lim.memory_mb}", **common)
        if done.get("memerr"):
            return ExecResult(Status.MEMORY_LIMIT, error=f"MemoryError (memory_mb={lim.memory_mb})", **common)
        if killed == proto.KILLED_REQUEST:  # we asked for a kill but recorded no reason: cannot happen
            return ExecResult(Status.SANDBOX_ERROR, error="job killed without a reason", **common)
        if sig is not None:
            if sig in (signal.SIGXCPU,) or (sig == signal.SIGKILL and cpu is not None
                                             and cpu >= lim.effective_cpu_s):
                return ExecResult(Status.TIMEOUT, error=f"CPU-time limit of {lim.effective_cpu_s} s reached",
                                  **common)
            return ExecResult(Status.RUNTIME_ERROR, error=f"killed by signal {sig}", **common)
        if exit_code == 0:
            return ExecResult(Status.OK, **common)
        if exit_code is None:
            return ExecResult(Status.SANDBOX_ERROR, error="no exit status for the program", **common)
        return ExecResult(Status.RUNTIME_ERROR, error=f"exit code {exit_code}", **common)


# --------------------------------------------------------------------------------------------
# Pool
# --------------------------------------------------------------------------------------------
BatchItem = Union[str, Mapping[str, Any], Job]


class SandboxPool:
    """A pool of warm, isolated workers. Thread-safe; use as a context manager or call close().

    ``isolation``: ``"bwrap"`` (default: pre-started bubblewrap workers, each program in fresh
    namespaces), ``"bwrap-per-run"`` (a fresh bubblewrap sandbox for every program: slower,
    simplest) or ``"none"`` (NO isolation, rlimits + process group only: never for untrusted code).
    If bubblewrap is unavailable, SandboxUnavailable is raised unless ``allow_unsafe=True``.

    ``workers``: pool size (default: three times the CPUs). ``limits``: default Limits for jobs that
    bring none. ``fresh_interpreter``: exec a new interpreter per program instead of running it
    in the forked zygote (closest to `python main.py`, several times slower). ``preload``:
    modules each worker imports once, so that programs get them for free (default: a list of
    common ones, see sandbox.isolation.PRELOAD); ``"module:function"`` also calls that function
    once, e.g. to warm caches; one given here that fails is an error. ``import_paths``: directories bound read-only into the sandbox and put on its
    ``sys.path`` (e.g. trusted code that programs call, such as a verifier and its libraries).
    ``python``: interpreter to use inside (default: the one running this, without its
    virtualenv: programs get the standard library only, plus ``import_paths``).
    """

    def __init__(self, workers: int | None = None, *, limits: Limits | None = None, isolation: str = "bwrap",
                 allow_unsafe: bool = False, fresh_interpreter: bool = False, python: str | None = None,
                 preload: list[str] | None = None, import_paths: list[str] | None = None):
        if workers is None:
            workers = default_workers()
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be a positive integer; got {workers!r}")
        self.isolation = iso.resolve_isolation(isolation, allow_unsafe)
        self.limits = limits or Limits()
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._closed = False
        self._lock = threading.Lock()
        self._workers = [Worker(self.isolation, fresh_interpreter=fresh_interpreter, python=python,
                                preload=preload, import_paths=import_paths) for _ in range(workers)]
        self._threads: list[threading.Thread] = []
        # Each worker is started by the thread that serves it: bwrap's --die-with-parent (and the
        # zygote's parent-death signal) fire when the *thread* that started the process exits.
        started: list[threading.Event] = []
        errors: list[BaseException] = []
        for w in self._workers:
            ev = threading.Event()
            started.append(ev)
            t = threading.Thread(target=self._serve, args=(w, ev, errors), name="sandbox-worker", daemon=True)
            t.start()
            self._threads.append(t)
        for ev in started:
            ev.wait()
        if errors:
            self.close()
            raise errors[0]

    @property
    def workers(self) -> int:
        return len(self._workers)

    def _serve(self, worker: Worker, started: threading.Event, errors: list) -> None:
        if self.isolation != "bwrap-per-run":
            try:
                worker.start()
            except BaseException as e:  # noqa: BLE001 - reported by the constructor
                errors.append(e)
                started.set()
                return
        started.set()
        while True:
            item = self._queue.get()
            if item is None:
                break
            job, fut = item
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                if self.isolation == "bwrap-per-run":
                    try:
                        result = worker.run(job)
                    finally:
                        worker.kill(wait=False)  # a fresh sandbox per program: this one is discarded
                else:
                    result = worker.run(job)
            except BaseException as e:  # noqa: BLE001 - never lose a job: report it as a sandbox error
                worker.kill(wait=False)
                result = ExecResult.sandbox_error(f"internal error: {type(e).__name__}: {e}",
                                                  isolation=self.isolation)
            fut.set_result(result)
            worker.wait_teardown()  # after the result: a killed sandbox is gone before the next job
        worker.close()

    def submit(self, program: str | bytes, stdin: str | bytes | None = None, files: Files | None = None,
               limits: Limits | None = None) -> "Future[ExecResult]":
        """Queue one program; the Future resolves to its ExecResult."""
        return self._submit_job(make_job(program, stdin, files, limits or self.limits))

    def _submit_job(self, job: Job) -> "Future[ExecResult]":
        with self._lock:
            if self._closed:
                raise RuntimeError("SandboxPool is closed")
            fut: Future[ExecResult] = Future()
            self._queue.put((job, fut))
        return fut

    def run(self, program: str | bytes, stdin: str | bytes | None = None, files: Files | None = None,
            limits: Limits | None = None) -> ExecResult:
        """Run one program and wait for its result."""
        return self.submit(program, stdin, files, limits).result()

    def run_batch(self, items: Iterable[BatchItem], limits: Limits | None = None) -> list[ExecResult]:
        """Run many programs in parallel; results come back in input order.

        Each item is a program (str), a Job, or a mapping with ``program`` and optional ``stdin``,
        ``files`` and ``limits`` (a Limits or a dict of Limits fields).
        """
        futures = [self._submit_job(self._to_job(item, limits)) for item in items]
        return [f.result() for f in futures]

    def map(self, items: Iterable[BatchItem], limits: Limits | None = None):
        """Like run_batch, but yields results (in input order) as soon as each is ready."""
        futures = [self._submit_job(self._to_job(item, limits)) for item in items]
        for f in futures:
            yield f.result()

    def _to_job(self, item: BatchItem, limits: Limits | None) -> Job:
        base = limits or self.limits
        if isinstance(item, Job):
            return item
        if isinstance(item, (str, bytes)):
            return make_job(item, None, None, base)
        if isinstance(item, Mapping):
            unknown = set(item) - {"program", "stdin", "files", "limits"}
            if unknown:
                raise ValueError(f"batch item has unknown keys {sorted(unknown)}; "
                                 "allowed: program, stdin, files, limits")
            if "program" not in item:
                raise ValueError("batch item needs a 'program' key")
            lim = item.get("limits")
            if isinstance(lim, Mapping):
                lim = base.replace(**lim)
            return make_job(item["program"], item.get("stdin"), item.get("files"), lim or base)
        raise TypeError(f"batch item must be str, Mapping or Job; got {type(item).__name__}")

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for _ in self._threads:
                self._queue.put(None)
        for t in self._threads:
            t.join(timeout=30)
        for w in self._workers:
            w.kill()

    def __enter__(self) -> "SandboxPool":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def default_workers() -> int:
    """Three times the CPUs available (at most CPUs + 16): a worker spends much of each short
    program waiting (on the caller, on the kernel's fork and exit), during which others can use
    the CPU. Measured on 2 CPUs: 2 workers 350, 4 workers 430, 6 workers 470 programs/s."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    n = max(1, n)
    return n + min(2 * n, 16)


_default_pools: dict[str, SandboxPool] = {}
_default_lock = threading.Lock()


def _default_pool(isolation: str, allow_unsafe: bool) -> SandboxPool:
    key = f"{isolation}:{allow_unsafe}"
    with _default_lock:
        pool = _default_pools.get(key)
        if pool is None:
            pool = SandboxPool(isolation=isolation, allow_unsafe=allow_unsafe)
            _default_pools[key] = pool
        return pool


@atexit.register
def _close_default_pools() -> None:
    with _default_lock:
        pools = list(_default_pools.values())
        _default_pools.clear()
    for p in pools:
        p.close()


def run(program: str | bytes, stdin: str | bytes | None = None, limits: Limits | None = None,
        files: Files | None = None, *, isolation: str = "bwrap", allow_unsafe: bool = False) -> ExecResult:
    """Run one untrusted Python program in the sandbox and return its ExecResult.

    With the default ``isolation="bwrap"`` it runs on a shared warm pool (started on first use).
    ``isolation="bwrap-per-run"`` starts a fresh bubblewrap sandbox just for this program.
    """
    job = make_job(program, stdin, files, limits)
    if isolation == "bwrap-per-run":
        iso_used = iso.resolve_isolation(isolation, allow_unsafe)
        worker = Worker(iso_used)
        try:
            return worker.run(job)
        finally:
            worker.kill()  # the whole sandbox is discarded (and gone when this returns)
    return _default_pool(isolation, allow_unsafe)._submit_job(job).result()


def run_batch(items: Iterable[BatchItem], limits: Limits | None = None, *, workers: int | None = None,
              isolation: str = "bwrap", allow_unsafe: bool = False) -> list[ExecResult]:
    """Run many programs in parallel on a warm pool; results in input order.

    ``workers=None`` uses the shared default pool; otherwise a pool of that size is started for
    this call and closed afterwards.
    """
    if workers is None:
        return _default_pool(isolation, allow_unsafe).run_batch(items, limits)
    with SandboxPool(workers, isolation=isolation, allow_unsafe=allow_unsafe) as pool:
        return pool.run_batch(items, limits)
