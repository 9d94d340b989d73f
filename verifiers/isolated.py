"""Run a verifier in sandbox worker processes, with a hard deadline per sample.

Verifiers that parse model text with heavy machinery (sympy, grammars) can hang or blow up on
adversarial input. Those are marked ``isolated`` (``register(name, isolated=True)``) and run
here: each sample is judged by a fresh process forked from a warm sandbox worker that has the
verifier's modules already imported (``SandboxPool(preload=...)``), and is killed at the
deadline. A verifier that times out, crashes or cannot be judged yields ``unverifiable``,
never a model failure. The deadline is enforced from outside the process; nothing here uses
``signal.alarm``.

Parent side: ``IsolatedRunner(ref).verify(completions, examples)``.
Child side (inside the sandbox): ``child_main()`` reads one JSON request from stdin and writes
one JSON verdict to stdout; the completion is only ever data.
"""

from __future__ import annotations

import atexit
import importlib
import json
import sys
import threading
from pathlib import Path
from typing import Any, Mapping, Sequence

from verifiers.types import VERDICT_STATUSES, Verdict, Verifier

DEFAULT_TIMEOUT_S = 5.0
DEFAULT_MEMORY_MB = 2048


# --------------------------------------------------------------------------------------------
# Inside the sandbox
# --------------------------------------------------------------------------------------------
def warm_up() -> None:
    """Called once in each sandbox worker (preload ``verifiers.isolated:warm_up``): imports the
    built-in verifiers and runs each isolated one on its ``warm_up_cases``, so that every forked
    child starts with parsers built and caches filled instead of building them per sample."""
    import logging

    logging.getLogger("math_verify").setLevel(logging.ERROR)  # "timeout is disabled" notices
    import verifiers  # noqa: F401  (registers the built-ins)
    from verifiers.registry import _REGISTRY

    for fn in list(_REGISTRY.values()):
        for completion, example in getattr(fn, "warm_up_cases", ()):
            try:
                fn(completion, example)
            except Exception:  # warm-up is best effort; real calls report their own errors
                pass


def child_main() -> None:
    """Judge one request ``{"verifier": ref, "completion": str, "example": {...}}`` from stdin."""
    from verifiers.registry import _guarded_call, get_verifier

    request = json.loads(sys.stdin.read())
    verdict = _guarded_call(get_verifier(request["verifier"]), request["completion"], request["example"])
    sys.stdout.write(json.dumps(verdict.to_dict()) + "\n")  # a raising verifier: an unverifiable verdict


CHILD_PROGRAM = "from verifiers.isolated import child_main\nchild_main()\n"


# --------------------------------------------------------------------------------------------
# The trusted parent
# --------------------------------------------------------------------------------------------
def verifier_ref(fn: Verifier) -> str:
    """How a child process finds ``fn``: its registered name, else ``module:function``."""
    name = getattr(fn, "verifier_name", None)
    if name:
        return name
    module = getattr(fn, "__module__", None)
    if not module or module == "__main__" or "<" in getattr(fn, "__qualname__", "<"):
        raise ValueError(f"verifier {fn!r} runs isolated, so it must be a module-level function in an "
                         "importable module (not __main__ or a closure); move it into a module")
    return f"{module}:{fn.__qualname__}"


def _import_root(module_name: str) -> str:
    """The sys.path directory that holds the top-level package of ``module_name``."""
    top = importlib.import_module(module_name.split(".")[0])
    location = getattr(top, "__file__", None)
    if location is None:  # a namespace package
        location = next(iter(top.__path__)) + "/__init__.py"
    path = Path(location).resolve()
    depth = 2 if path.name == "__init__.py" else 1
    return str(path.parents[depth - 1])


def import_paths_for(ref: str) -> list[str]:
    """Read-only directories the sandbox needs to import the verifier behind ``ref`` and its
    libraries: this package's root, the plugin module's root, and the installed packages."""
    modules = ["verifiers", "sympy"]
    if ":" in ref:
        modules.append(ref.partition(":")[0])
    roots = [_import_root(m) for m in modules]
    return list(dict.fromkeys(roots))


class IsolatedRunner:
    """A warm sandbox pool that judges samples with one verifier, one process per sample."""

    def __init__(self, ref: str, *, timeout_s: float = DEFAULT_TIMEOUT_S, memory_mb: int = DEFAULT_MEMORY_MB,
                 workers: int | None = None):
        from sandbox import Limits, SandboxPool

        self.ref = ref
        self.timeout_s = timeout_s
        preload = ["verifiers", "verifiers.isolated:warm_up"]
        if ":" in ref:
            preload.insert(1, ref.partition(":")[0])
        self.limits = Limits(timeout_s=timeout_s, memory_mb=memory_mb)
        self.pool = SandboxPool(workers, limits=self.limits, preload=preload,
                                import_paths=import_paths_for(ref))

    def verify(self, completions: Sequence[str], examples: Sequence[Mapping[str, Any]]) -> list[Verdict]:
        from sandbox import Status

        jobs = [{"program": CHILD_PROGRAM,
                 "stdin": json.dumps({"verifier": self.ref, "completion": c, "example": dict(e)}, default=str)}
                for c, e in zip(completions, examples)]
        verdicts = []
        for result in self.pool.run_batch(jobs):
            if result.status is Status.TIMEOUT:
                verdicts.append(Verdict("unverifiable", 0.0, f"verifier timed out after {self.timeout_s:g} s"))
            elif result.status is not Status.OK:
                tail = (result.error or result.stderr or "").strip().splitlines()[-1:] or [""]
                verdicts.append(Verdict("unverifiable", 0.0,
                                        f"verifier process failed ({result.status.value}): {tail[0][:300]}"))
            else:
                verdicts.append(_parse_reply(result.stdout))
        return verdicts

    def close(self) -> None:
        self.pool.close()


def _parse_reply(stdout: str) -> Verdict:
    try:
        reply = json.loads(stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return Verdict("unverifiable", 0.0, f"verifier process gave no verdict: {stdout[-200:]!r}")
    if reply.get("status") not in VERDICT_STATUSES or not isinstance(reply.get("reward"), (int, float)):
        return Verdict("unverifiable", 0.0, f"verifier process gave a malformed verdict: {reply!r}"[:300])
    extracted = reply.get("extracted")
    return Verdict(reply["status"], float(reply["reward"]), str(reply.get("reason", "")),
                   None if extracted is None else str(extracted))


_RUNNERS: dict[tuple[str, float, int], IsolatedRunner] = {}
_RUNNERS_LOCK = threading.Lock()


def runner_for(fn: Verifier, *, timeout_s: float | None = None, memory_mb: int | None = None) -> IsolatedRunner:
    """The shared runner for ``fn`` (started on first use, closed at exit)."""
    timeout_s = timeout_s or getattr(fn, "timeout_s", None) or DEFAULT_TIMEOUT_S
    memory_mb = memory_mb or DEFAULT_MEMORY_MB
    key = (verifier_ref(fn), float(timeout_s), int(memory_mb))
    with _RUNNERS_LOCK:
        runner = _RUNNERS.get(key)
        if runner is None:
            runner = _RUNNERS[key] = IsolatedRunner(key[0], timeout_s=key[1], memory_mb=key[2])
        return runner


@atexit.register
def close_runners() -> None:
    with _RUNNERS_LOCK:
        runners = list(_RUNNERS.values())
        _RUNNERS.clear()
    for runner in runners:
        runner.close()

