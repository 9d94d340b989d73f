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
import os
import shutil
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any, Mapping, Sequence

from verifiers.registry import VerifierSpec
from verifiers.types import VERDICT_STATUSES, Verdict

DEFAULT_TIMEOUT_S = 5.0
DEFAULT_MEMORY_MB = 2048


# --------------------------------------------------------------------------------------------
# Inside the sandbox
# --------------------------------------------------------------------------------------------
def warm_up() -> None:
    """Called once in each sandbox worker (preload ``verifiers.isolated:warm_up``): imports the
    built-in verifiers and runs each registered one on its ``warm_up_cases``, so that every forked
    child starts with parsers built and caches filled instead of building them per sample."""
    import logging

    logging.getLogger("math_verify").setLevel(logging.ERROR)  # "timeout is disabled" notices
    import verifiers  # noqa: F401  (registers the built-ins)
    from verifiers.registry import registered_specs

    for spec in registered_specs():
        for completion, example in spec.warm_up_cases:
            spec.judge(completion, example)  # best effort: a failure here is only a cold cache


def child_main() -> None:
    """Judge one request ``{"verifier": ref, "completion": str, "example": {...}, "finish_reason": str}``."""
    from verifiers.registry import get_verifier

    request = json.loads(sys.stdin.read())
    spec = get_verifier(request["verifier"])
    verdict = spec.judge(request["completion"], request["example"], request.get("finish_reason", "stop"))
    sys.stdout.write(json.dumps(verdict.to_dict()) + "\n")  # a raising verifier: an unverifiable verdict


CHILD_PROGRAM = "from verifiers.isolated import child_main\nchild_main()\n"


# --------------------------------------------------------------------------------------------
# The trusted parent
# --------------------------------------------------------------------------------------------
def _import_root(module_name: str) -> str:
    """The sys.path directory that holds the top-level package of ``module_name``."""
    top = importlib.import_module(module_name.split(".")[0])
    location = getattr(top, "__file__", None)
    if location is None:  # a namespace package
        location = next(iter(top.__path__)) + "/__init__.py"
    path = Path(location).resolve()
    depth = 2 if path.name == "__init__.py" else 1
    return str(path.parents[depth - 1])


def _staged_copy(module_name: str, root: str) -> str:
    """A world-readable copy of the top-level module or package ``module_name`` under ``root``.

    As root, the sandbox drops to an unprivileged uid, which cannot read a plugin kept in a private
    folder (a home directory of mode 0700, pytest's temporary folders). Copying just that module
    or package (not the rest of the folder) into a fresh readable directory lets it import there.
    """
    top = module_name.split(".")[0]
    stage = Path(tempfile.mkdtemp(prefix="rlvr-plugin-"))
    atexit.register(shutil.rmtree, stage, ignore_errors=True)
    source = Path(root) / top
    if source.is_dir():
        shutil.copytree(source, stage / top, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    else:
        shutil.copy2(source.with_suffix(".py"), stage / f"{top}.py")
    for path in [stage, *stage.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return str(stage)


def import_paths_for(ref: str) -> list[str]:
    """Read-only directories the sandbox needs to import the verifier behind ``ref`` and its
    libraries: this package's root, the plugin module's root, and the installed packages."""
    roots = [_import_root(m) for m in ("verifiers", "sympy")]
    if ":" in ref:
        module_name = ref.partition(":")[0]
        root = _import_root(module_name)
        if os.geteuid() == 0 and os.stat(root).st_mode & 0o005 != 0o005:  # the sandbox's uid could not read it
            root = _staged_copy(module_name, root)
        roots.append(root)
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

    def verify(self, completions: Sequence[str], examples: Sequence[Mapping[str, Any]],
               finish_reasons: Sequence[str] | None = None) -> list[Verdict]:
        from sandbox import Status

        reasons = finish_reasons if finish_reasons is not None else ["stop"] * len(completions)
        jobs = [{"program": CHILD_PROGRAM,
                 "stdin": json.dumps({"verifier": self.ref, "completion": c, "example": dict(e), "finish_reason": r},
                                     default=str)}
                for c, e, r in zip(completions, examples, reasons)]
        verdicts = []
        for result in self.pool.run_batch(jobs):
            if result.status is Status.TIMEOUT:
                verdicts.append(Verdict("unverifiable", 0.0, f"verifier timed out after {self.timeout_s:g} s"))
            elif result.status is not Status.OK:
                verdicts.append(Verdict("unverifiable", 0.0, _failure_reason(result)))
            else:
                verdicts.append(_parse_reply(result.stdout))
        return verdicts

    def close(self) -> None:
        self.pool.close()


def _failure_reason(result) -> str:
    """Why a verifier process failed: its status, and the last line of its stderr (the exception)."""
    stderr = (result.stderr or "").strip().splitlines()
    tail = stderr[-1] if stderr else (result.error or "").strip()
    return f"verifier process failed ({result.status.value}): {tail[:300]}"


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


def runner_for(spec: VerifierSpec, *, timeout_s: float | None = None, memory_mb: int | None = None) -> IsolatedRunner:
    """The shared runner for ``spec`` (started on first use, closed at exit)."""
    timeout_s = timeout_s or spec.timeout_s or DEFAULT_TIMEOUT_S
    memory_mb = memory_mb or DEFAULT_MEMORY_MB
    key = (spec.ref, float(timeout_s), int(memory_mb))
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

