"""Verifiers by name.

A verifier is a plain function ``(completion: str, example: Mapping) -> Verdict``.
It is found by a registered name (``register``), or by ``module:function``.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Mapping, Sequence

from verifiers.types import Verdict, Verifier

_REGISTRY: dict[str, Verifier] = {}


def register(name: str) -> Callable[[Verifier], Verifier]:
    """Decorator: make ``fn`` available as ``get_verifier(name)``."""

    def wrap(fn: Verifier) -> Verifier:
        if name in _REGISTRY and _REGISTRY[name] is not fn:
            raise ValueError(f"a verifier named {name!r} is already registered ({_REGISTRY[name].__module__})")
        _REGISTRY[name] = fn
        return fn

    return wrap


def available_verifiers() -> list[str]:
    return sorted(_REGISTRY)


def get_verifier(name: str) -> Verifier:
    """Return the verifier registered as ``name``, or import ``module:function``."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    if ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ValueError(f"verifier {name!r}: cannot import module {module_name!r} ({exc})") from exc
        fn = getattr(module, attr, None)
        if not callable(fn):
            raise ValueError(f"verifier {name!r}: module {module_name!r} has no function {attr!r}")
        return fn
    raise ValueError(
        f"unknown verifier {name!r}; registered: {', '.join(available_verifiers())}, "
        "or give a plugin as 'module:function'"
    )


def verify_batch(verifier: Verifier, completions: Sequence[str], examples: Sequence[Mapping[str, Any]]) -> list[Verdict]:
    """Judge each completion against its example.

    A verifier that raises yields an ``unverifiable`` verdict carrying the error,
    never a silent model failure.
    """
    if len(completions) != len(examples):
        raise ValueError(f"verify_batch: {len(completions)} completions but {len(examples)} examples")
    verdicts = []
    for completion, example in zip(completions, examples):
        try:
            verdict = verifier(completion, example)
            if not isinstance(verdict, Verdict):
                raise TypeError(f"verifier returned {type(verdict).__name__}, expected Verdict")
        except Exception as exc:  # the verifier failed, not the model
            verdict = Verdict("unverifiable", 0.0, f"verifier error: {exc!r}")
        verdicts.append(verdict)
    return verdicts
