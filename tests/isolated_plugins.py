"""Verifiers that misbehave, run isolated by tests/test_verifier_registry.py (module-level, importable).

Registered like a user's plugin module: ``register`` isolates them by default."""

import os
import time

from verifiers import Verdict, register


@register("test_echo_length")
def echo_length(completion: str, example) -> Verdict:
    """Correct iff the completion has the example's length; reports the pid it ran in."""
    ok = len(completion) == int(example["answer"])
    return Verdict("correct" if ok else "incorrect", float(ok), f"pid={os.getpid()}")


@register("test_hangs")
def hangs(completion: str, example) -> Verdict:
    """A verifier stuck in a loop on some input (like a parser on adversarial text)."""
    if "hang" in completion:
        while True:
            time.sleep(0.01)
    return Verdict("correct", 1.0, "fine")


@register("test_crashes")
def crashes(completion: str, example) -> Verdict:
    """A verifier whose process dies (a segfault in a C extension, say)."""
    if "crash" in completion:
        os.abort()
    if "raise" in completion:
        raise RuntimeError("parser exploded")
    return Verdict("incorrect", 0.0, "fine")


@register("test_eats_memory")
def eats_memory(completion: str, example) -> Verdict:
    blob = bytearray(int(example["answer"]) << 20)
    return Verdict("correct", 1.0, f"{len(blob)}")


@register("test_finish_reason")
def sees_finish_reason(completion: str, example, *, finish_reason: str = "stop") -> Verdict:
    """Reports the finish reason it was given, from wherever it runs."""
    return Verdict("correct", 1.0, f"finish_reason={finish_reason} pid={os.getpid()}")


def plain_function(completion: str, example) -> Verdict:
    """Not registered: given as module:function it runs isolated, as a user's code should."""
    return Verdict("correct", 1.0, f"pid={os.getpid()}")
