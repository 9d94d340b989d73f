"""Verifiers by name, each described by one typed record, ``VerifierSpec``.

A verifier is a plain function ``(completion: str, example: Mapping) -> Verdict``. How it runs
(in worker processes with a deadline, or here; per sample or a whole batch at once) is not stuck
onto the function: it lives in the ``VerifierSpec`` that ``register`` records and
``get_verifier`` returns. A verifier is found by a registered name, by ``module:function``
(resolved from the current directory too, as ``python -m`` does), or through the
``rlvr.verifiers`` entry-point group of an installed package.

Isolation is the default: a user's verifier runs in sandbox worker processes, killed at its
deadline (``verifiers.isolated``), so a verifier that hangs cannot hang training. In-process
runs are an opt-in (``register(name, isolated=False)``) for cheap, trusted checks such as the
built-in regex verifiers; a deadline cannot apply to them, and ``deadline_note`` says so.

Judging batches is ``verifiers.dispatch.verify_batch``; this module only describes verifiers.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Callable, Mapping, Sequence

from verifiers.types import Verdict, Verifier

ENTRY_POINT_GROUP = "rlvr.verifiers"

BatchVerifier = Callable[..., Sequence[Verdict]]  # (completions, examples, [finish_reasons=], [timeout_s=])


@dataclass(frozen=True, eq=False)
class VerifierSpec:
    """Everything the dispatcher needs to know about one verifier."""

    name: str  # registered name, or the module:function it was found by
    fn: Verifier | None = None  # judges one sample; None for a weighted combination
    batch: BatchVerifier | None = None  # judges a whole batch itself (e.g. fanning programs out over the sandbox)
    isolated: bool = False  # each sample in a sandboxed process killed at the deadline (verifiers.isolated)
    timeout_s: float | None = None  # default per-sample deadline of an isolated verifier (None: isolated's default)
    components: tuple[tuple["VerifierSpec", float], ...] = ()  # a weighted sum of these (verifiers.combine)
    warm_up_cases: tuple[tuple[str, Mapping[str, Any]], ...] = ()  # run once per sandbox worker before it forks
    takes_finish_reason: bool = False  # fn/batch accept finish_reason(s)= ("stop" or "length")
    batch_takes_timeout: bool = False  # batch accepts timeout_s=
    requires: tuple[str, ...] = ()  # example fields it reads; a task whose rows lack one is refused at load

    def required_fields(self) -> tuple[str, ...]:
        """The example fields this verifier (every component of a combination) reads."""
        fields = list(self.requires)
        for component, _ in self.components:
            fields += [f for f in component.required_fields() if f not in fields]
        return tuple(fields)

    @property
    def ref(self) -> str:
        """How a sandboxed child process finds this verifier: ``module:function`` of ``fn``."""
        return function_ref(self.fn)

    def judge(self, completion: str, example: Mapping[str, Any], finish_reason: str = "stop") -> Verdict:
        """Run ``fn`` on one sample in this process; a raise or a non-Verdict is ``unverifiable``."""
        try:
            if self.fn is None:
                raise TypeError(f"verifier {self.name!r} has no per-sample function")
            extra = {"finish_reason": finish_reason} if self.takes_finish_reason else {}
            verdict = self.fn(completion, example, **extra)
            if not isinstance(verdict, Verdict):
                raise TypeError(f"verifier returned {type(verdict).__name__}, expected Verdict")
            return verdict
        except Exception as exc:  # the verifier failed, not the model
            return Verdict("unverifiable", 0.0, f"verifier error: {exc!r}")

    def deadline_note(self) -> str | None:
        """A warning when a per-sample deadline cannot hold for this verifier (it runs in this process)."""
        if self.components:
            notes = [c.deadline_note() for c, _ in self.components]
            return "; ".join(n for n in notes if n) or None
        if self.isolated or self.batch is not None:
            return None
        if getattr(self.fn, "__module__", "").startswith("verifiers."):
            return None  # a built-in in-process check: bounded regexes and arithmetic, it cannot hang
        return (f"verifier {self.name!r} runs in the trainer's process (registered with isolated=False): "
                "no deadline applies to it, and if it hangs the run hangs; register it with isolated=True "
                "(the default) to judge each sample in a sandboxed process killed at its deadline")


_REGISTRY: dict[str, VerifierSpec] = {}
_BY_FUNCTION: dict[int, VerifierSpec] = {}  # id(fn) -> its spec, so module:function finds a registered one


def function_ref(fn: Any) -> str:
    """``module:qualname`` of a module-level function; a clear error for anything a child can't import."""
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", "<")
    if not module or module == "__main__" or "<" in qualname:
        raise ValueError(f"verifier {fn!r} runs isolated, so it must be a module-level function in an importable "
                         "module (not __main__ or a closure): move it into a module, or register it with "
                         "isolated=False to run it in this process without a deadline")
    return f"{module}:{qualname}"


def _accepts(fn: Callable | None, name: str) -> bool:
    if fn is None:
        return False
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def make_spec(name: str, fn: Verifier | None, *, batch: BatchVerifier | None = None, isolated: bool = True,
              timeout_s: float | None = None, warm_up_cases: Sequence[tuple[str, Mapping[str, Any]]] = (),
              requires: Sequence[str] = ()) -> VerifierSpec:
    """A ``VerifierSpec`` for ``fn``; reads from the signatures which optional arguments it takes."""
    if fn is not None and not callable(fn):
        raise ValueError(f"verifier {name!r} is not a function (got {type(fn).__name__})")
    if isolated and batch is None:
        function_ref(fn)  # fails now, not in the first sandboxed child
    return VerifierSpec(
        name=name, fn=fn, batch=batch, isolated=isolated and batch is None,
        timeout_s=None if timeout_s is None else float(timeout_s),
        warm_up_cases=tuple(warm_up_cases),
        takes_finish_reason=_accepts(batch if batch is not None else fn,
                                     "finish_reasons" if batch is not None else "finish_reason"),
        batch_takes_timeout=_accepts(batch, "timeout_s"),
        requires=tuple(requires),
    )


def register(name: str, *, isolated: bool = True, timeout_s: float | None = None, batch: BatchVerifier | None = None,
             warm_up_cases: Sequence[tuple[str, Mapping[str, Any]]] = (),
             requires: Sequence[str] = ()) -> Callable[[Verifier], Verifier]:
    """Decorator: make ``fn`` available as ``get_verifier(name)``; returns ``fn`` unchanged.

    ``isolated=True`` (default): judge each sample in a sandboxed process killed after
    ``timeout_s`` seconds (default ``verifiers.isolated.DEFAULT_TIMEOUT_S``); the function must
    live in an importable module. ``isolated=False``: run in this process, with no deadline (for
    cheap, trusted checks). ``batch``: a function ``(completions, examples) -> verdicts`` that
    judges whole batches itself (then ``isolated`` does not apply: it runs its own processes).
    ``warm_up_cases``: ``(completion, example)`` pairs run once in each sandbox worker before it
    forks samples, so parsers are built and caches filled once. ``requires``: the example fields
    it reads (e.g. ``("answer",)``), so a task without them is refused at load, not scored
    unverifiable at every step.
    """

    def wrap(fn: Verifier) -> Verifier:
        if name in _REGISTRY and _REGISTRY[name].fn is not fn:
            raise ValueError(f"a verifier named {name!r} is already registered ({_REGISTRY[name].fn!r})")
        spec = make_spec(name, fn, batch=batch, isolated=isolated, timeout_s=timeout_s, warm_up_cases=warm_up_cases,
                         requires=requires)
        _REGISTRY[name] = spec
        _BY_FUNCTION[id(fn)] = spec
        return fn

    return wrap


def registered_specs() -> list[VerifierSpec]:
    """The specs registered so far (built-ins once ``verifiers`` is imported, plus imported plugins)."""
    return list(_REGISTRY.values())


def _entry_point_verifiers() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available_verifiers() -> list[str]:
    """Registered names, plus those that installed packages offer as entry points."""
    return sorted(set(_REGISTRY) | set(_entry_point_verifiers()))


def spec_of(name: str, obj: Any) -> VerifierSpec:
    """The spec of something a plugin reference resolved to: a spec, a registered function, or a plain
    function (isolated by default: a user's code gets a deadline)."""
    if isinstance(obj, VerifierSpec):
        return obj
    if id(obj) in _BY_FUNCTION and _BY_FUNCTION[id(obj)].fn is obj:
        return _BY_FUNCTION[id(obj)]
    if not callable(obj):
        raise ValueError(f"verifier {name!r} is not a function (got {type(obj).__name__})")
    return make_spec(name, obj, isolated=True)


def import_plugin_module(module_name: str, what: str) -> Any:
    """Import a plugin's module, looking in the current directory first (as ``python -m`` does)."""
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"{what}: cannot import module {module_name!r} ({exc}); run from the folder that holds "
                         f"{module_name.replace('.', '/')}.py, or install it / put its folder on PYTHONPATH") from exc


def get_verifier(name: str) -> VerifierSpec:
    """The verifier registered as ``name``, an entry point of that name, or ``module:function``."""
    if isinstance(name, VerifierSpec):
        return name
    if not isinstance(name, str) or not name:
        raise ValueError(f"a verifier is named by a non-empty string; got {name!r}")
    if name in _REGISTRY:
        return _REGISTRY[name]
    if ":" in name:
        module_name, _, attr = name.partition(":")
        module = import_plugin_module(module_name, f"verifier {name!r}")
        obj = getattr(module, attr, None)
        if obj is None:
            raise ValueError(f"verifier {name!r}: module {module_name!r} has no function {attr!r}")
        return spec_of(name, obj)
    eps = _entry_point_verifiers()
    if name in eps:
        try:
            obj = eps[name].load()
        except Exception as exc:
            raise ValueError(f"verifier {name!r}: the entry point {eps[name].value!r} of group "
                             f"{ENTRY_POINT_GROUP!r} failed to load ({exc!r})") from exc
        return spec_of(name, obj)
    raise ValueError(
        f"unknown verifier {name!r}; registered: {', '.join(available_verifiers())}; or give a plugin "
        f"as 'module:function', or install a package with a {ENTRY_POINT_GROUP!r} entry point"
    )


def as_spec(verifier: VerifierSpec | Verifier) -> VerifierSpec:
    """A spec as is; a function by its registration, else as an in-process verifier (a direct call)."""
    if isinstance(verifier, VerifierSpec):
        return verifier
    if id(verifier) in _BY_FUNCTION and _BY_FUNCTION[id(verifier)].fn is verifier:
        return _BY_FUNCTION[id(verifier)]
    name = getattr(verifier, "__name__", repr(verifier))
    return make_spec(name, verifier, isolated=False)
