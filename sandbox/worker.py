"""The trusted side of one worker: start its sandbox, send it a job, enforce the deadline and the
output caps while the program runs, read its answer, kill it when it stops answering."""

from __future__ import annotations

import fcntl
import os
import select
import signal
import socket
import subprocess
import time
import weakref

from . import _protocol as proto
from . import isolation as iso
from .isolation import SandboxUnavailable
from .cgroups import RunCgroup, make_run_cgroup
from .job import Job
from .result import ExecResult, Streams, outcome

KILL_GRACE_S = 0.5        # after asking the worker to kill a job, wait this long before killing the worker
DRAIN_S = 0.25            # after the job ended, wait at most this long for the output pipes to close
START_TIMEOUT_S = 30.0    # a worker that is not ready by then counts as failed
TEARDOWN_WAIT_S = 10.0    # after killing a worker, wait at most this long for all of its processes to be gone

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
        self.info: dict[str, str] = {}
        self._next_id = 0
        self._inits: list[int] = []   # pidfds of the worker's pid-namespace init (the zygote)
        self._dying: list[int] = []   # the same, for killed workers whose processes may still be exiting
        self.cgroup: RunCgroup | None = None   # where this incarnation's programs run (None: no cgroup)
        self._dying_cgroups: list[RunCgroup] = []   # of killed incarnations: removed once their processes are gone
        self.accounting = ""          # how the memory limit is enforced, in words (see cgroups.py)

    # ---- lifecycle -------------------------------------------------------------------------
    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None and self.sock is not None

    def start(self, timeout: float = START_TIMEOUT_S) -> None:
        """Start the worker and wait until it is ready. Raises SandboxUnavailable on failure."""
        self.kill()
        if self.isolation != "none":
            self.cgroup, self.accounting = make_run_cgroup()
        else:
            self.accounting = "per-process fallback (no isolation)"
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            cmd = iso.build_command(self.isolation, child.fileno(), fresh_interpreter=self.fresh_interpreter,
                                    python=self.python, preload=self.preload, import_paths=self.import_paths,
                                    disk_mb=self.disk_mb, cgroup=self.cgroup)
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
            if raw[0] == proto.OP_READY:
                self.info = proto.decode_ready(raw)
                if self.info.get("preload_failed") and self.preload is not None:  # modules the caller named
                    self.kill()
                    raise SandboxUnavailable("sandbox worker could not import its preload modules: "
                                             f"{self.info['preload_failed']}; check import_paths")
                self._inits = self._watch_inits()
                return
            if raw[0] == proto.OP_FATAL:
                self.kill()
                raise SandboxUnavailable(f"sandbox worker cannot isolate programs: {proto.decode_text(raw)}. "
                                         f"{iso.INSTALL_HINT}")

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
        cgroups, self._dying_cgroups = self._dying_cgroups, []
        for cg in cgroups:
            cg.remove()  # (one still busy stays until this process exits: see cgroups._remove_ours)

    def after_job(self) -> None:
        """Between jobs, once the result is out: wait for killed sandboxes to be gone, and give
        back the memory the last run left charged to the run cgroup."""
        self.wait_teardown()
        if self.cgroup is not None and self.alive:
            self.cgroup.tidy()

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
        if self.cgroup is not None:
            self._dying_cgroups.append(self.cgroup)
            self.cgroup = None
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
        header = proto.JobHeader(
            job_id=job_id, timeout_s=lim.timeout_s, memory_mb=lim.memory_mb, cpu_s=lim.effective_cpu_s,
            max_file_bytes=lim.max_file_bytes, disk_mb=lim.disk_mb, max_open_files=lim.max_open_files,
            max_processes=lim.max_processes + 1, payload_size=len(payload), has_files=bool(job.files)).encode()
        if self.cgroup is not None:
            try:
                self.cgroup.set_limits(lim.memory_mb, lim.max_processes + 1)
            except OSError as e:  # (e.g. a limit below what a killed run still holds): a fresh worker
                raise _WorkerDied(f"could not set the run cgroup's limits: {e}", False)
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
        done: proto.Done | None = None
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
                        answer = proto.Done.decode(raw)
                        if answer is not None and answer.job_id == job_id:
                            done = answer
                        elif raw[0] == proto.OP_FATAL:
                            # The worker could not clean up after its previous program (or could
                            # not read this job): this job did not run; retried on a new worker.
                            raise _WorkerDied(proto.decode_text(raw), False)
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
        return outcome(done, kill_reason, Streams(bytes(bufs[out_r]), bytes(bufs[err_r]), truncated[out_r],
                                                  truncated[err_r]), duration, lim, self.isolation)

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
            self.sock.send(proto.encode_kill(job_id))
        except OSError:
            pass
