"""Verifiers: plain functions ``(completion, example) -> Verdict``, found by name."""

from verifiers.types import VERDICT_STATUSES, Verdict, Verifier
from verifiers.registry import VerifierSpec, available_verifiers, get_verifier, register
from verifiers.dispatch import verify_batch
from verifiers import arithmetic as _arithmetic  # noqa: F401  (registers built-ins)
from verifiers import math as _math  # noqa: F401
from verifiers import format as _format  # noqa: F401
from verifiers import code as _code  # noqa: F401
from verifiers import countdown as _countdown  # noqa: F401

__all__ = ["VERDICT_STATUSES", "Verdict", "Verifier", "VerifierSpec", "available_verifiers", "get_verifier",
           "register", "verify_batch"]
