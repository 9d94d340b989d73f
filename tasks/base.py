"""A Task: where problems come from, how they are asked, and how answers are judged."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

Row = Mapping[str, Any]


@dataclass(frozen=True)
class Task:
    """A verifiable task.

    ``load(split)`` returns rows (dicts) that carry at least the fields named by
    ``question_field`` and ``answer_field``; rows of tasks with demonstrations also
    carry ``solution_field`` (a chain-of-thought completion, used by SFT).
    """

    name: str
    load: Callable[[str], list[dict[str, Any]]]  # split -> rows
    verifier: str  # registry name of the verifier (see verifiers.get_verifier)
    prompt_template: str = "{question}"  # str.format over the row's fields
    question_field: str = "question"
    answer_field: str = "answer"
    solution_field: str | None = None
    splits: tuple[str, ...] = ("train", "test")

    def prompt(self, row: Row) -> str:
        return self.prompt_template.format(**row)
