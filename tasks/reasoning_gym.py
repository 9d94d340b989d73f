"""Tasks from reasoning-gym's procedural datasets (``pip install -e ".[reasoning-gym]"``).

Two ways to name one:

* ``reasoning_gym:NAME``, optionally with options as a query:
  ``reasoning_gym:chain_sum?size=2000&seed=1&min_terms=2&max_terms=3``. ``size``, ``test_size``,
  ``seed`` and ``verifier`` are this task's options; every other key is a generator option of the
  dataset (a field of its config dataclass). Values are YAML scalars, as with ``--set``.
* a task YAML with ``source: reasoning_gym``::

      name: chain_sum_short           # default: reasoning_gym:<dataset>
      source: reasoning_gym
      dataset: chain_sum              # any reasoning-gym dataset name
      size: 2000                      # train problems (default 2000)
      test_size: 200                  # held-out problems (default 200)
      seed: 0
      config: {min_terms: 2, max_terms: 3}   # the dataset's generator options
      verifier: reasoning_gym         # the dataset's own scorer (default), or math (rows carry `answer`)
      prompt_template: "{question}\\n\\nPut your final answer in \\\\boxed{}."   # optional
      system_prompt: null
      use_chat_template: true
      stop: []

How splits are made, as for the built-in procedural tasks (``tasks/procedural.py``): one seeded
stream of problems (reasoning-gym's item ``i`` of a dataset built with a seed derived from
``seed``) is cut by a hash of each problem's question into the held-out share (10%) and the train
share, keeping the first ``test_size`` and ``size`` distinct questions of each. The splits never
share a question, whatever the sizes, and each is a deterministic function of the dataset, its
options and the seed. A small problem space yields fewer rows than asked (never none).

Rows: ``question``, ``answer`` (the gold answer), ``metadata`` (the dataset's, as JSON data),
``id``, and ``rg_dataset`` / ``rg_config`` for the ``reasoning_gym`` verifier. The default prompt
is a chat prompt for instruct models that asks for the final answer in ``\\boxed{}``.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Mapping

import yaml

import verifiers.reasoning_gym  # noqa: F401  (registers the "reasoning_gym" verifier)
from tasks.base import Task, TaskError
from tasks.procedural import HELDOUT_BUCKETS, split_of_key

PREFIX = "reasoning_gym:"
SOURCE = "reasoning_gym"
INSTALL_HINT = 'pip install -e ".[reasoning-gym]"'
DEFAULT_SIZE = 2000
DEFAULT_TEST_SIZE = 200
PROMPT_TEMPLATE = "{question}\n\nSolve this step by step, then put the final answer in \\boxed{}."
TASK_OPTIONS = ("size", "test_size", "seed", "verifier")  # the rest of a name's query configures the dataset
YAML_FIELDS = {
    "name": "the task's name (default reasoning_gym:<dataset>)",
    "source": "reasoning_gym",
    "dataset": "a reasoning-gym dataset name, e.g. chain_sum (required)",
    "size": f"train problems (default {DEFAULT_SIZE})",
    "test_size": f"held-out problems (default {DEFAULT_TEST_SIZE})",
    "seed": "seed of the problem stream (default 0)",
    "config": "the dataset's generator options, e.g. {min_terms: 2}",
    "verifier": "reasoning_gym (the dataset's scorer, default) or another verifier name, e.g. math",
    "prompt_template": "the prompt, with {question} (default: asks for a \\boxed{} answer)",
    "system_prompt": "a system prompt",
    "use_chat_template": "render with the tokenizer's chat template (default true)",
    "stop": "stop strings for rlvr eval",
}


@dataclass(frozen=True)
class ReasoningGymSpec:
    """Which problems: a dataset, its generator options, the split sizes and the seed."""

    dataset: str  # reasoning-gym dataset name, e.g. chain_sum
    config: tuple[tuple[str, str], ...] = ()  # generator options as sorted (name, JSON value): hashable
    size: int = DEFAULT_SIZE  # train problems
    test_size: int = DEFAULT_TEST_SIZE  # held-out problems
    seed: int = 0

    def config_dict(self) -> dict[str, Any]:
        return {key: json.loads(value) for key, value in self.config}

    def config_json(self) -> str:
        return json.dumps(self.config_dict(), sort_keys=True)

    def stream_seed(self) -> int:
        """reasoning-gym seeds item ``i`` with ``seed + i``, so seeds 0 and 1 would give nearly the same
        problems; a hash of (dataset, seed) spreads them apart."""
        return int(hashlib.sha256(f"reasoning_gym/{self.dataset}/{self.seed}".encode()).hexdigest()[:8], 16)


def _library():
    try:
        import reasoning_gym
    except ImportError as exc:
        raise TaskError(f"reasoning-gym tasks need the reasoning-gym package, which is not installed; install it "
                        f"with {INSTALL_HINT}") from exc
    return reasoning_gym


def _jsonable(value: Any) -> Any:
    """``value`` as JSON data (tuples become lists, sets sorted lists), so that a row judged in a
    sandboxed process (which receives it as JSON) is the row that was generated."""

    def fallback(obj: Any) -> Any:
        if isinstance(obj, (set, frozenset)):
            return sorted(obj, key=repr)
        return str(obj)

    return json.loads(json.dumps(value, default=fallback))


def make_spec(dataset: Any, config: Mapping[str, Any] | None = None, *, size: Any = DEFAULT_SIZE,
              test_size: Any = DEFAULT_TEST_SIZE, seed: Any = 0, where: str = "reasoning_gym task") -> ReasoningGymSpec:
    """A checked spec: the dataset exists, its options build it, the sizes and seed are valid."""
    library = _library()
    from reasoning_gym.factory import DATASETS

    if not isinstance(dataset, str) or dataset not in DATASETS:
        close = difflib.get_close_matches(str(dataset), DATASETS, n=3)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise TaskError(f"{where}: unknown reasoning-gym dataset {dataset!r}; {hint}the {len(DATASETS)} datasets: "
                        f"{', '.join(sorted(DATASETS))}")
    for field, value, low in (("size", size, 1), ("test_size", test_size, 1), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise TaskError(f"{where}: {field} = {value!r}: must be an integer >= {low}")
    config = dict(config or {})
    fields = sorted(f.name for f in dataclasses.fields(DATASETS[dataset][1]) if f.name not in ("seed", "size"))
    for key in config:
        if key in ("seed", "size"):
            raise TaskError(f"{where}: {key!r} is this task's option, not a generator option; give it beside the "
                            "dataset (size: train problems, test_size: held-out problems, seed)")
        if key not in fields:
            raise TaskError(f"{where}: {dataset} has no generator option {key!r}; its options: {', '.join(fields)}")
    try:
        library.create_dataset(dataset, **config)  # the dataset's own checks (e.g. min_terms <= max_terms)
    except Exception as exc:
        raise TaskError(f"{where}: {dataset} rejects the options {config}: {exc!r}") from exc
    return ReasoningGymSpec(dataset=dataset, config=tuple(sorted((k, json.dumps(_jsonable(v))) for k, v in config.items())),
                            size=size, test_size=test_size, seed=seed)


@lru_cache(maxsize=8)
def generate_splits(spec: ReasoningGymSpec) -> dict[str, tuple[dict[str, Any], ...]]:
    """Both splits of ``spec`` from one seeded stream of problems (see the module docstring)."""
    library = _library()
    wanted = {"train": spec.size, "test": spec.test_size}
    # a stream long enough to fill both shares twice over; a small problem space stops it earlier
    share = {"train": 1.0 - HELDOUT_BUCKETS / 100, "test": HELDOUT_BUCKETS / 100}
    limit = 2 * math.ceil(max(wanted[s] / share[s] for s in wanted)) + 1000
    dataset = library.create_dataset(spec.dataset, seed=spec.stream_seed(), size=limit, **spec.config_dict())
    rows: dict[str, list[dict[str, Any]]] = {"train": [], "test": []}
    seen: set[str] = set()
    for index in range(limit):
        if all(len(rows[s]) >= wanted[s] for s in wanted):
            break
        try:
            item = dataset[index]
        except IndexError:  # a dataset with a finite problem list ran out
            break
        question = str(item["question"])
        split = split_of_key(f"reasoning_gym/{spec.dataset}/{question}")
        if question in seen or len(rows[split]) >= wanted[split]:
            continue
        seen.add(question)
        rows[split].append({
            "question": question,
            "answer": _jsonable(item["answer"]),
            "metadata": _jsonable(item.get("metadata", {})),
            "id": f"{spec.dataset}/{spec.seed}/{index}",
            "rg_dataset": spec.dataset,
            "rg_config": spec.config_json(),
        })
    for split in wanted:
        if not rows[split]:
            raise TaskError(f"reasoning-gym {spec.dataset} with options {spec.config_dict()} produced no {split} "
                            f"problems in {limit} draws: its problem space is too small; widen the options")
    return {split: tuple(r) for split, r in rows.items()}


def make_task(spec: ReasoningGymSpec, *, name: str | None = None, verifier: str = "reasoning_gym",
              prompt_template: str = PROMPT_TEMPLATE, system_prompt: str | None = None,
              use_chat_template: bool = True, stop: tuple[str, ...] = (), source: str = "built-in") -> Task:
    def load(split: str) -> list[dict[str, Any]]:
        return [dict(row) for row in generate_splits(spec)[split]]  # copies: callers may add fields

    return Task(name=name or f"{PREFIX}{spec.dataset}", load=load, verifier=verifier,
                prompt_template=prompt_template, system_prompt=system_prompt, use_chat_template=use_chat_template,
                question_field="question", answer_field="answer", splits=("train", "test"), stop=stop,
                id_field="id", source=source)


# --------------------------------------------------------------------------------------------
# reasoning_gym:NAME?key=value&...
# --------------------------------------------------------------------------------------------
def is_reasoning_gym_name(name: str) -> bool:
    return isinstance(name, str) and name.startswith(PREFIX)


def _task_name(text: str) -> str:
    """The name as given, with characters that do not belong in a folder name (eval reports) replaced."""
    return re.sub(r"[^A-Za-z0-9_.:=,+-]", "_", text)


def task_from_name(name: str) -> Task:
    """The task ``reasoning_gym:NAME[?option=value&...]`` names."""
    body = name[len(PREFIX):]
    dataset, _, query = body.partition("?")
    options: dict[str, Any] = {}
    for part in filter(None, query.split("&")):
        key, eq, text = part.partition("=")
        if not eq or not key:
            raise TaskError(f"task {name!r}: option {part!r} must be key=value, e.g. "
                            f"{PREFIX}chain_sum?size=2000&min_terms=2")
        try:
            options[key] = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise TaskError(f"task {name!r}: option {key}: {text!r} is not a YAML value ({exc})") from exc
    task_options = {k: options.pop(k) for k in TASK_OPTIONS if k in options}
    verifier = task_options.pop("verifier", "reasoning_gym")
    if not isinstance(verifier, str) or not verifier:
        raise TaskError(f"task {name!r}: verifier = {verifier!r}: must be a verifier name, e.g. reasoning_gym or math")
    spec = make_spec(dataset, options, where=f"task {name!r}", **task_options)
    return make_task(spec, name=_task_name(name), verifier=verifier)


# --------------------------------------------------------------------------------------------
# task YAML with source: reasoning_gym
# --------------------------------------------------------------------------------------------
def task_from_mapping(data: Mapping[str, Any], source: str = "built-in") -> Task:
    """The task a mapping with ``source: reasoning_gym`` defines (see the module docstring)."""
    where = f"task file {source}"
    unknown = sorted(set(data) - set(YAML_FIELDS))
    if unknown:
        raise TaskError(f"{where}: unknown field '{unknown[0]}'; fields of a reasoning_gym task: {', '.join(YAML_FIELDS)}")
    if "dataset" not in data:
        raise TaskError(f"{where}: field 'dataset' is required ({YAML_FIELDS['dataset']})")
    config = data.get("config") or {}
    if not isinstance(config, dict):
        raise TaskError(f"{where}: field 'config' = {config!r}: must be a mapping of generator options")
    spec = make_spec(data["dataset"], config, size=data.get("size", DEFAULT_SIZE),
                     test_size=data.get("test_size", DEFAULT_TEST_SIZE), seed=data.get("seed", 0), where=where)
    strings = {}
    for field in ("name", "verifier", "prompt_template", "system_prompt"):
        value = data.get(field)
        if value is not None and (not isinstance(value, str) or not value):
            raise TaskError(f"{where}: field '{field}' = {value!r}: must be a non-empty string ({YAML_FIELDS[field]})")
        strings[field] = value
    use_chat = data.get("use_chat_template", True)
    if not isinstance(use_chat, bool):
        raise TaskError(f"{where}: field 'use_chat_template' = {use_chat!r}: must be true or false")
    stop = data.get("stop") or []
    stop = [stop] if isinstance(stop, str) else stop
    if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop):
        raise TaskError(f"{where}: field 'stop' = {stop!r}: must be a list of non-empty strings")
    return make_task(spec, name=strings["name"], verifier=strings["verifier"] or "reasoning_gym",
                     prompt_template=strings["prompt_template"] or PROMPT_TEMPLATE,
                     system_prompt=strings["system_prompt"], use_chat_template=use_chat, stop=tuple(stop),
                     source=source)
