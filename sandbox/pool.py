"""The pool: warm workers served by one thread each, a shared job queue, and the module-level
run()/run_batch() on a default pool."""

from __future__ import annotations

import atexit
import os
import queue
import threading
from concurrent.futures import Future
from typing import Any, Iterable, Mapping, Union

from . import isolation as iso
from .job import Files, Job, make_job
from .limits import Limits
from .result import ExecResult
from .worker import Worker

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
            worker.after_job()  # after the result: a killed sandbox is gone before the next job
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

