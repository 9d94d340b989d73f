"""Built-in tasks, found by name."""

from __future__ import annotations

from tasks.base import Task
from tasks import arithmetic

_TASKS: dict[str, Task] = {arithmetic.TASK.name: arithmetic.TASK}


def available_tasks() -> list[str]:
    return sorted(_TASKS)


def get_task(name: str) -> Task:
    if name not in _TASKS:
        raise ValueError(f"unknown task {name!r}; built-in tasks: {', '.join(available_tasks())}")
    return _TASKS[name]


__all__ = ["Task", "available_tasks", "get_task"]
