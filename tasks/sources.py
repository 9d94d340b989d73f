"""Where a task's rows come from: local JSON / JSONL / Parquet files, or a ``datasets`` hub id.

Local files are read directly (no cache is written): ``.jsonl`` holds one JSON object a
line; ``.json`` holds a list of objects (or an object with one list of them, such as
``{"data": [...]}``), or JSON Lines; ``.parquet`` is read with pyarrow. Any of them may be
gzipped (``.jsonl.gz``). Hub datasets go through ``datasets.load_dataset``; when the hub
cannot be reached the error says how to work offline.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from tasks.base import TaskError

FORMATS = {".jsonl": "jsonl", ".json": "json", ".parquet": "parquet"}

OFFLINE_FIX = (
    "To work offline, either download the dataset once while online (its cache is reused when "
    "HF_DATASETS_OFFLINE=1 is set), or point the task at local files: write a task YAML with "
    "`data_files: {{train: train.jsonl, test: test.jsonl}}` (JSON, JSONL or Parquet{extends}) and pass "
    "`--task my_task.yaml` (or `task: my_task.yaml` in a train config)"
)


def file_format(path: str | Path) -> str:
    """'jsonl', 'json' or 'parquet', from the file name (a trailing .gz is allowed)."""
    name = Path(path).name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    for ext, fmt in FORMATS.items():
        if name.endswith(ext):
            return fmt
    raise TaskError(f"data file {str(path)!r}: unknown format; use a .jsonl, .json or .parquet file (optionally .gz)")


def _open_text(path: Path):
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def _check_rows(rows: Any, path: Path) -> list[dict[str, Any]]:
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise TaskError(f"data file {str(path)!r}: expected a list of JSON objects (one per problem)")
    return rows


def read_file(path: str | Path) -> list[dict[str, Any]]:
    """The rows of one local data file."""
    p = Path(path)
    if not p.is_file():
        raise TaskError(f"data file {str(p)!r} does not exist")
    fmt = file_format(p)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            return pq.read_table(p).to_pylist()
        except Exception as exc:  # pyarrow's errors name no file
            raise TaskError(f"data file {str(p)!r}: not a readable Parquet file ({exc})") from exc
    with _open_text(p) as fh:
        text = fh.read()
    if fmt == "json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            data = None  # perhaps JSON Lines under a .json name
        if data is not None:
            if isinstance(data, dict):
                lists = [v for v in data.values() if isinstance(v, list)]
                if len(lists) != 1:
                    raise TaskError(f"data file {str(p)!r}: a JSON object must hold exactly one list of rows "
                                    "(e.g. {\"data\": [...]}); or write a list of objects, or JSON Lines")
                data = lists[0]
            return _check_rows(data, p)
    return [row for _, row in iter_jsonl(text.splitlines(), p)]


def iter_jsonl(lines: Iterable[str], where: str | Path,
               error: type[ValueError] = TaskError) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line of JSON Lines read from ``where``; a line
    that is not one JSON object raises ``error`` naming the file and the line."""
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise error(f"{where}:{lineno}: not valid JSON ({exc.msg}); each line must be one JSON object") from exc
        if not isinstance(row, dict):
            raise error(f"{where}:{lineno}: expected a JSON object, got {type(row).__name__}")
        yield lineno, row


@dataclass(frozen=True)
class LocalFiles:
    """Rows from local files: split -> one or more files (read in the order given)."""

    files: dict[str, tuple[str, ...]]

    def splits(self) -> tuple[str, ...]:
        return tuple(self.files)

    def load(self, split: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for path in self.files[split]:
            rows.extend(read_file(path))
        return rows

    def describe(self) -> str:
        return ", ".join(f"{s}: {', '.join(paths)}" for s, paths in self.files.items())


@dataclass(frozen=True)
class HubDataset:
    """Rows of a dataset on the Hugging Face hub, through ``datasets.load_dataset``."""

    path: str  # e.g. openai/gsm8k
    config: str | None = None  # e.g. main
    splits_map: dict[str, str] = field(default_factory=lambda: {"train": "train", "test": "test"})  # ours -> hub's
    revision: str | None = None
    extends_hint: str | None = None  # the built-in task a local copy can extend, for the offline message

    def splits(self) -> tuple[str, ...]:
        return tuple(self.splits_map)

    def load(self, split: str) -> list[dict[str, Any]]:
        import datasets

        hub_split = self.splits_map[split]
        name = self.path + (f" (config {self.config!r})" if self.config else "")
        try:
            ds = datasets.load_dataset(self.path, self.config, split=hub_split, revision=self.revision)
        except (ConnectionError, FileNotFoundError, OSError) as exc:
            extends = f"; `extends: {self.extends_hint}` keeps this task's prompt and fields" if self.extends_hint else ""
            raise TaskError(f"cannot load the hub dataset {name}, split {hub_split!r}: {exc}. "
                            + OFFLINE_FIX.format(extends=extends)) from exc
        except ValueError as exc:  # e.g. an unknown split or config
            raise TaskError(f"hub dataset {name}: {exc}") from exc
        return [dict(r) for r in ds]

    def describe(self) -> str:
        return f"hub {self.path}" + (f" ({self.config})" if self.config else "")


def as_file_list(value: str | Sequence[str], base_dir: Path | None, where: str) -> tuple[str, ...]:
    """``value`` (a path or a list of paths) resolved against ``base_dir``, each checked to exist."""
    items = [value] if isinstance(value, str) else list(value) if isinstance(value, (list, tuple)) else None
    if not items or not all(isinstance(v, str) and v for v in items):
        raise TaskError(f"{where} must be a file path or a list of file paths; got {value!r}")
    out = []
    for item in items:
        p = Path(item).expanduser()
        if not p.is_absolute() and base_dir is not None:
            p = base_dir / p
        if not p.is_file():
            raise TaskError(f"{where}: no such file {str(p)!r} (relative paths are taken from the task YAML's folder)")
        try:
            file_format(p)
        except TaskError as exc:
            raise TaskError(f"{where}: {exc}") from exc
        out.append(str(p))
    return tuple(out)
