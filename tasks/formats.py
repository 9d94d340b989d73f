"""Row formats: named conversions from a source dataset's rows to the fields verifiers read.

A task (built-in or YAML) names one with ``row_format``; the built-in hub tasks use the same
functions, so a local copy of GSM8K, MATH, MBPP or HumanEval in its original format loads
exactly as the hub version does. Each function takes one source row and returns it with
fields added (the source fields are kept):

* ``gsm8k``: ``answer`` ("...reasoning... #### 1,234") -> ``answer`` "1234" (the number after
  ``####``, commas removed); ``solution``: the reasoning, calculator annotations ``<<...>>``
  removed, ending in ``The answer is \\boxed{1234}.``; the original text stays in ``answer_text``.
* ``math``: ``answer`` is the row's own ``answer`` when it has one (MATH-500), else the last
  ``\\boxed{}`` of ``solution`` (MATH); rows with neither are dropped.
* ``mbpp``: ``tests`` = setup code / test imports + the asserts of ``test_list``;
  ``entry_point`` = the function the asserts call; ``question`` = the task text (``text`` in
  the full config, ``prompt`` in the sanitized one); ``test_examples`` = the asserts shown in
  the prompt; ``solution`` = the reference ``code`` in a fenced block.
* ``humaneval``: ``tests`` = ``test`` (a ``check(candidate)`` function), plus the row's
  ``prompt`` and ``entry_point`` as they are (the completion continues the prompt);
  ``solution`` = ``canonical_solution``.
"""

from __future__ import annotations

import ast
import builtins
import re
from typing import Any, Callable

from tasks.base import TaskError

Row = dict[str, Any]

_GSM8K_CALC = re.compile(r"<<[^>]*>>")


def gsm8k_row(raw: Row) -> Row | None:
    text = str(raw.get("answer", ""))
    reasoning, sep, final = text.rpartition("####")
    if not sep:
        raise TaskError(f"gsm8k row has no '####' before its final answer: {text[:80]!r}")
    answer = final.strip().replace(",", "")
    steps = _GSM8K_CALC.sub("", reasoning).strip()
    solution = (steps + " " if steps else "") + f"The answer is \\boxed{{{answer}}}."
    return {**raw, "answer_text": text, "answer": answer, "solution": solution}


def math_row(raw: Row) -> Row | None:
    from verifiers.arithmetic import last_boxed

    answer = raw.get("answer")
    if answer is None or str(answer).strip() == "":
        answer = last_boxed(str(raw.get("solution", "")))
    if answer is None:
        return None  # no gold answer to judge against
    return {**raw, "answer": str(answer).strip()}


def _called_names(source: str) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id not in names:
            names.append(node.func.id)
    return names


def _defined_functions(source: str) -> list[str]:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    return [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]


def mbpp_row(raw: Row) -> Row | None:
    test_list = [str(t) for t in raw.get("test_list") or []]
    if not test_list:
        raise TaskError(f"mbpp row {raw.get('task_id')!r} has no test_list")
    setup = raw.get("test_setup_code") or "\n".join(raw.get("test_imports") or [])
    asserts = "\n".join(test_list)
    try:
        called = _called_names(asserts)
    except SyntaxError as exc:
        raise TaskError(f"mbpp row {raw.get('task_id')!r}: test_list is not valid Python ({exc})") from exc
    defined = _defined_functions(str(raw.get("code", "")))
    # the function under test: called by the asserts and defined by the reference code, else the first call
    entry_point = next((n for n in called if n in defined), None) or next(
        (n for n in called if not hasattr(builtins, n)), None)
    if entry_point is None:
        raise TaskError(f"mbpp row {raw.get('task_id')!r}: cannot tell which function the tests call")
    question = raw.get("text") or raw.get("prompt") or ""
    return {
        **raw,
        "question": str(question),
        "tests": (setup + "\n" if setup else "") + asserts,
        "entry_point": entry_point,
        "test_examples": asserts,
        "solution": f"```python\n{raw.get('code', '')}\n```",
    }


def humaneval_row(raw: Row) -> Row | None:
    for name in ("prompt", "test", "entry_point"):
        if name not in raw:
            raise TaskError(f"humaneval row {raw.get('task_id')!r} has no field {name!r}")
    return {**raw, "question": raw["prompt"], "tests": raw["test"], "solution": raw.get("canonical_solution", "")}


ROW_FORMATS: dict[str, Callable[[Row], Row | None]] = {
    "gsm8k": gsm8k_row,
    "math": math_row,
    "mbpp": mbpp_row,
    "humaneval": humaneval_row,
}


def get_row_format(name: str, where: str = "row_format") -> Callable[[Row], Row | None]:
    if name not in ROW_FORMATS:
        raise TaskError(f"{where} = {name!r}: unknown; valid: {', '.join(sorted(ROW_FORMATS))} (or leave it out "
                        "for rows used as they are)")
    return ROW_FORMATS[name]
