"""Verifiers that misbehave, run isolated by tests/test_verifier_registry.py (module-level, importable)."""

import os
import time

from verifiers import Verdict


def _mark_isolated(fn):
    fn.isolated = True  # what register(..., isolated=True) sets, for a plugin given as module:function
    return fn


@_mark_isolated
def echo_length(completion: str, example) -> Verdict:
    """Correct iff the completion has the example's length; reports the pid it ran in."""
    ok = len(completion) == int(example["answer"])
    return Verdict("correct" if ok else "incorrect", float(ok), f"pid={os.getpid()}")


@_mark_isolated
def hangs(completion: str, example) -> Verdict:
    """A verifier stuck in a loop on some input (like a parser on adversarial text)."""
    if "hang" in completion:
        while True:
            time.sleep(0.01)
    return Verdict("correct", 1.0, "fine")


@_mark_isolated
def crashes(completion: str, example) -> Verdict:
    """A verifier whose process dies (a segfault in a C extension, say)."""
    if "crash" in completion:
        os.abort()
    if "raise" in completion:
        raise RuntimeError("parser exploded")
    return Verdict("incorrect", 0.0, "fine")


@_mark_isolated
def eats_memory(completion: str, example) -> Verdict:
    blob = bytearray(int(example["answer"]) << 20)
    return Verdict("correct", 1.0, f"{len(blob)}")
