"""Verifiers by name.

A verifier is a plain function ``(completion: str, example: Mapping) -> Verdict``. It is found
by a registered name (``register``), by ``module:function``, or through the ``rlvr.verifiers``
entry-point group of an installed package (``name = "package.module:function"``).

How a batch is judged (``verify_batch``):

* a verifier with a ``batch`` attribute (``fn.batch(completions, examples) -> verdicts``) judges
  the whole batch itself, e.g. the code verifier, which fans programs out over the sandbox pool;
* a verifier registered with ``isolated=True`` runs in sandbox worker processes with a hard
  deadline per sample (``verifiers.isolated``): for parsers that could hang on adversarial text;
* any other verifier runs in this process, one sample after the other.

In every case a verifier that raises, times out or crashes yields ``unverifiable``, never a
silent model failure.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any, Callable, Mapping, Sequence

from verifiers.types import Verdict, Verifier

ENTRY_POINT_GROUP = "rlvr.verifiers"

_REGISTRY: dict[str, Verifier] = {}


def register(name: str, *, isolated: bool = False, timeout_s: float | None = None) -> Callable[[Verifier], Verifier]:
    """Decorator: make ``fn`` available as ``get_verifier(name)``.

    ``isolated=True``: judge each sample in a sandboxed process killed after ``timeout_s``
    seconds (default ``verifiers.isolated.DEFAULT_TIMEOUT_S``); the function must then live in
    an importable module.
    """

    def wrap(fn: Verifier) -> Verifier:
        if name in _REGISTRY and _REGISTRY[name] is not fn:
            raise ValueError(f"a verifier named {name!r} is already registered ({_REGISTRY[name].__module__})")
        _REGISTRY[name] = fn
        fn.verifier_name = name  # type: ignore[attr-defined]  (how a sandboxed child finds it)
        if isolated:
            fn.isolated = True  # type: ignore[attr-defined]
        if timeout_s is not None:
            fn.timeout_s = float(timeout_s)  # type: ignore[attr-defined]
        return fn

    return wrap


def _entry_point_verifiers() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available_verifiers() -> list[str]:
    """Registered names, plus those that installed packages offer as entry points."""
    return sorted(set(_REGISTRY) | set(_entry_point_verifiers()))


def _checked(name: str, fn: Any) -> Verifier:
    if not callable(fn):
        raise ValueError(f"verifier {name!r} is not a function (got {type(fn).__name__})")
    return fn


def get_verifier(name: str) -> Verifier:
    """The verifier registered as ``name``, an entry point of that name, or ``module:function``."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"a verifier is named by a non-empty string; got {name!r}")
    if name in _REGISTRY:
        return _REGISTRY[name]
    if ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ValueError(f"verifier {name!r}: cannot import module {module_name!r} ({exc}); "
                             "is it installed or on PYTHONPATH?") from exc
        fn = getattr(module, attr, None)
        if fn is None:
            raise ValueError(f"verifier {name!r}: module {module_name!r} has no function {attr!r}")
        return _checked(name, fn)
    eps = _entry_point_verifiers()
    if name in eps:
        try:
            fn = eps[name].load()
        except Exception as exc:
            raise ValueError(f"verifier {name!r}: the entry point {eps[name].value!r} of group "
                             f"{ENTRY_POINT_GROUP!r} failed to load ({exc!r})") from exc
        return _checked(name, fn)
    raise ValueError(
        f"unknown verifier {name!r}; registered: {', '.join(available_verifiers())}; or give a plugin "
        f"as 'module:function', or install a package with a {ENTRY_POINT_GROUP!r} entry point"
    )


def verify_batch(verifier: Verifier, completions: Sequence[str], examples: Sequence[Mapping[str, Any]],
                 *, timeout_s: float | None = None) -> list[Verdict]:
    """Judge each completion against its example; verdicts in input order.

    ``timeout_s`` overrides the per-sample deadline of isolated verifiers.
    """
    if len(completions) != len(examples):
        raise ValueError(f"verify_batch: {len(completions)} completions but {len(examples)} examples")
    if not completions:
        return []
    batch = getattr(verifier, "batch", None)
    if batch is not None:
        verdicts = _guarded_batch(batch, completions, examples)
    elif getattr(verifier, "isolated", False):
        from verifiers.isolated import runner_for

        verdicts = _guarded_batch(runner_for(verifier, timeout_s=timeout_s).verify, completions, examples)
    else:
        verdicts = [_guarded_call(verifier, c, e) for c, e in zip(completions, examples)]
    return verdicts


def _guarded_call(verifier: Verifier, completion: str, example: Mapping[str, Any]) -> Verdict:
    try:
        verdict = verifier(completion, example)
        if not isinstance(verdict, Verdict):
            raise TypeError(f"verifier returned {type(verdict).__name__}, expected Verdict")
        return verdict
    except Exception as exc:  # the verifier failed, not the model
        return Verdict("unverifiable", 0.0, f"verifier error: {exc!r}")


def _guarded_batch(batch: Callable, completions: Sequence[str], examples: Sequence[Mapping[str, Any]]) -> list[Verdict]:
    try:
        verdicts = list(batch(completions, examples))
        if len(verdicts) != len(completions) or not all(isinstance(v, Verdict) for v in verdicts):
            raise TypeError(f"batch verifier returned {len(verdicts)} items, expected {len(completions)} Verdicts")
        return verdicts
    except Exception as exc:  # the verifier failed, not the model: every sample is unverifiable
        return [Verdict("unverifiable", 0.0, f"verifier error: {exc!r}") for _ in completions]
