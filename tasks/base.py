"""A Task: where problems come from, how they are asked, and how answers are judged."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping

Row = Mapping[str, Any]

# ``{field}`` is replaced by the row's field; ``{{`` and ``}}`` are literal braces; any other brace is
# kept as written, so LaTeX such as ``\boxed{}`` needs no escaping in a template.
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")


class TaskError(ValueError):
    """A task cannot be defined or loaded; the message names the field or file and the fix."""


def template_fields(template: str) -> list[str]:
    """The row fields a prompt template names, in order."""
    return [m.group(1) for m in _PLACEHOLDER.finditer(template) if m.group(1)]


def fill_template(template: str, row: Row, where: str = "prompt_template") -> str:
    """``template`` with each ``{field}`` replaced by ``str(row[field])``."""

    def sub(m: re.Match) -> str:
        name = m.group(1)
        if name is None:
            return m.group(0)[0]
        if name not in row:
            raise TaskError(f"{where} names the field {{{name}}}, which the row lacks; "
                            f"fields of the row: {', '.join(sorted(row))}")
        return str(row[name])

    return _PLACEHOLDER.sub(sub, template)


@dataclass(frozen=True)
class Task:
    """A verifiable task.

    ``load(split)`` returns rows (dicts) as the verifier reads them: math verifiers
    read the gold answer from ``answer``; the code verifier reads ``tests`` and
    ``entry_point`` (or ``inputs`` and ``outputs``). Rows of tasks with
    demonstrations also carry ``solution_field`` (a worked completion, used by SFT).

    The prompt is ``prompt_template`` filled from the row. Plain prompts put
    ``system_prompt`` (if any) and a blank line before it; with
    ``use_chat_template`` the tokenizer's chat template renders a system message
    (if any) and the user message, and opens the assistant's turn.
    """

    name: str
    load: Callable[[str], list[dict[str, Any]]]  # split -> rows
    verifier: str  # registry name of the verifier (see verifiers.get_verifier)
    prompt_template: str = "{question}"  # ``{field}`` placeholders over the row's fields
    system_prompt: str | None = None
    use_chat_template: bool = False  # render the prompt with the tokenizer's chat template
    question_field: str = "question"
    answer_field: str = "answer"
    solution_field: str | None = None
    splits: tuple[str, ...] = ("train", "test")
    stop: tuple[str, ...] = ()  # stop strings `rlvr eval` uses unless given others (e.g. HumanEval's)
    id_field: str | None = None  # a row field that names the problem in reports (e.g. task_id)
    source: str = "built-in"  # where the task is defined: built-in, or the YAML file

    def rows(self, split: str, limit: int | None = None) -> list[dict[str, Any]]:
        """The rows of ``split`` (the first ``limit`` of them), checked against the prompt template."""
        if split not in self.splits:
            raise TaskError(f"task {self.name!r} has no split {split!r}; its splits: {', '.join(self.splits)}")
        rows = self.load(split)
        if limit is not None:
            rows = rows[:limit]
        if rows:
            missing = [f for f in template_fields(self.prompt_template) if f not in rows[0]]
            if missing:
                raise TaskError(
                    f"task {self.name!r} ({self.source}): prompt_template names {{{missing[0]}}}, but rows of split "
                    f"{split!r} have no such field; their fields: {', '.join(sorted(rows[0]))}. "
                    "Fix prompt_template (or question_field) to name one of them"
                )
        return rows

    def user_message(self, row: Row) -> str:
        return fill_template(self.prompt_template, row, f"task {self.name!r}: prompt_template")

    def prompt(self, row: Row, tokenizer: Any = None) -> str:
        """The prompt text. The chat template applies when ``use_chat_template`` is set and a tokenizer is given."""
        message = self.user_message(row)
        if self.use_chat_template and tokenizer is not None:
            if not getattr(tokenizer, "chat_template", None):
                raise TaskError(f"task {self.name!r} sets use_chat_template, but the model's tokenizer has no chat "
                                "template; set use_chat_template: false (a plain prompt) or use a chat model")
            messages = ([{"role": "system", "content": self.system_prompt}] if self.system_prompt else [])
            messages.append({"role": "user", "content": message})
            return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return f"{self.system_prompt}\n\n{message}" if self.system_prompt else message

    def encode(self, row: Row, tokenizer: Any) -> list[int]:
        """Prompt token ids. A rendered chat template already holds its special tokens, so none are added."""
        chat = self.use_chat_template
        return list(tokenizer(self.prompt(row, tokenizer), add_special_tokens=not chat).input_ids)

    def problem_id(self, row: Row, index: int) -> Any:
        return row.get(self.id_field, index) if self.id_field else index
