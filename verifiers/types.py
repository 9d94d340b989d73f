"""The Verifier contract: ``(completion, example) -> Verdict``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Literal, Mapping

VerdictStatus = Literal["correct", "incorrect", "unverifiable"]
VERDICT_STATUSES: tuple[str, ...] = ("correct", "incorrect", "unverifiable")


@dataclass(frozen=True)
class Verdict:
    """What a verifier says about one completion.

    ``status`` is ``correct`` or ``incorrect`` when the verifier could judge the
    completion, and ``unverifiable`` when the verifier itself failed (parse crash,
    timeout, sandbox error). Unverifiable samples are counted and masked out of the
    advantages; they are never scored as a model success or failure.
    """

    status: VerdictStatus
    reward: float
    reason: str = ""
    extracted: str | None = None  # the final answer the verifier read, normalized (for majority voting); None if none


    def __post_init__(self) -> None:
        if self.status not in VERDICT_STATUSES:
            raise ValueError(f"Verdict.status must be one of {VERDICT_STATUSES}; got {self.status!r}")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status, "reward": self.reward, "reason": self.reason}
        if self.extracted is not None:
            out["extracted"] = self.extracted
        return out


Verifier = Callable[[str, Mapping[str, Any]], Verdict]
