"""Judging a batch: one entry point, ``verify_batch``, whatever kind of verifier it is given.

* a weighted combination judges each component as its own kind, with the same deadline and
  finish reasons, and sums the verdicts (``verifiers.combine.combine_verdicts``);
* a verifier with a ``batch`` function judges the whole batch itself (e.g. the code verifier,
  which fans programs out over the sandbox pool);
* an isolated verifier runs each sample in a sandboxed process killed at the deadline
  (``verifiers.isolated``);
* any other verifier runs in this process, one sample after the other.

In every case a verifier that raises, times out or crashes yields ``unverifiable``, never a
silent model failure.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from verifiers.combine import combine_verdicts
from verifiers.isolated import runner_for
from verifiers.registry import VerifierSpec, as_spec
from verifiers.types import Verdict, Verifier


def verify_batch(verifier: VerifierSpec | Verifier, completions: Sequence[str],
                 examples: Sequence[Mapping[str, Any]], *, timeout_s: float | None = None,
                 finish_reasons: Sequence[str] | None = None) -> list[Verdict]:
    """Judge each completion against its example; verdicts in input order.

    ``timeout_s`` overrides the per-sample deadline of every sandboxed verifier involved
    (components of a combination included). ``finish_reasons[i]`` is ``"length"`` when completion
    ``i`` was cut at ``max_new_tokens`` (verifiers that take it refuse to guess an answer then).
    """
    if len(completions) != len(examples):
        raise ValueError(f"verify_batch: {len(completions)} completions but {len(examples)} examples")
    if finish_reasons is not None and len(finish_reasons) != len(completions):
        raise ValueError(f"verify_batch: {len(completions)} completions but {len(finish_reasons)} finish reasons")
    if not completions:
        return []
    spec = as_spec(verifier)
    reasons = list(finish_reasons) if finish_reasons is not None else ["stop"] * len(completions)
    if spec.components:
        per_component = [verify_batch(c, completions, examples, timeout_s=timeout_s, finish_reasons=reasons)
                         for c, _ in spec.components]
        weights = [w for _, w in spec.components]
        names = [c.name for c, _ in spec.components]
        return [combine_verdicts([c[i] for c in per_component], weights, names) for i in range(len(completions))]
    if spec.batch is not None:
        extra: dict[str, Any] = {}
        if spec.takes_finish_reason:
            extra["finish_reasons"] = reasons
        if spec.batch_takes_timeout and timeout_s is not None:
            extra["timeout_s"] = timeout_s
        return _guarded_batch(spec, completions, examples, extra)
    if spec.isolated:
        runner = runner_for(spec, timeout_s=timeout_s)
        return runner.verify(completions, examples, reasons)
    return [spec.judge(c, e, r) for c, e, r in zip(completions, examples, reasons)]


def _guarded_batch(spec: VerifierSpec, completions: Sequence[str], examples: Sequence[Mapping[str, Any]],
                   extra: Mapping[str, Any]) -> list[Verdict]:
    try:
        verdicts = list(spec.batch(completions, examples, **extra))
        if len(verdicts) != len(completions) or not all(isinstance(v, Verdict) for v in verdicts):
            raise TypeError(f"batch verifier returned {len(verdicts)} items, expected {len(completions)} Verdicts")
        return verdicts
    except Exception as exc:  # the verifier failed, not the model: every sample is unverifiable
        return [Verdict("unverifiable", 0.0, f"verifier error: {exc!r}") for _ in completions]
