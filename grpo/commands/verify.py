"""``rlvr verify``: judge a JSONL file of completions with a verifier, offline.

Each input row carries ``completion`` plus the fields the verifier reads (``answer`` for math;
``tests`` + ``entry_point`` or ``inputs`` + ``outputs`` for code). Each row is written back, in
input order, with ``reward``, ``status`` and ``reason`` added. Rows are judged in chunks through
``verify_batch``, so sandboxed verifiers run in parallel over their warm worker pool. The output
file appears only when every row has been judged (written to a temporary file, then renamed).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, Iterator, TextIO

from tasks.sources import iter_jsonl
from verifiers import VERDICT_STATUSES, get_verifier, verify_batch

CHUNK_ROWS = 512  # rows handed to the verifier at once: enough to keep every sandbox worker busy


class VerifyInputError(ValueError):
    """The input file is not what ``rlvr verify`` reads; the message names the row and the fix."""


def read_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, row) for each non-blank line; a malformed line stops with its number."""
    with open(path, encoding="utf-8") as f:
        for lineno, row in iter_jsonl(f, path, VerifyInputError):
            if not isinstance(row.get("completion"), str):
                raise VerifyInputError(f"{path}:{lineno}: needs a string field 'completion' (the model's output); "
                                       f"fields present: {sorted(row)}")
            if row.get("finish_reason", "stop") not in ("stop", "length"):
                raise VerifyInputError(f"{path}:{lineno}: 'finish_reason' is {row['finish_reason']!r}; give 'stop' "
                                       "(the completion ended) or 'length' (cut at max_new_tokens), or leave it out")
            yield lineno, row


def _chunks(rows: Iterator[tuple[int, dict[str, Any]]], size: int) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    for _, row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def verify_file(verifier_name: str, input_path: str | Path, output_path: str | Path, *,
                timeout_s: float | None = None, chunk_rows: int = CHUNK_ROWS, log: TextIO | None = None) -> dict[str, Any]:
    """Judge every row of ``input_path`` into ``output_path``; returns the summary it prints."""
    log = log if log is not None else sys.stderr  # read at call time: a captured stderr may have been swapped since import
    input_path, output_path = Path(input_path), Path(output_path)
    if not input_path.is_file():
        raise VerifyInputError(f"input file {input_path} does not exist")
    if output_path.resolve() == input_path.resolve():
        raise VerifyInputError("--output must differ from --input (the input is read while the output is written)")
    verifier = get_verifier(verifier_name)  # a bad name fails here, before any work
    if (note := verifier.deadline_note()) is not None and timeout_s is not None:
        print(f"rlvr verify: warning: --timeout does not apply: {note}", file=log)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = output_path.with_name(f".{output_path.name}.tmp-{os.getpid()}")
    counts: Counter[str] = Counter()
    first_unverifiable: str | None = None
    t0 = time.perf_counter()
    try:
        with open(tmp, "w", encoding="utf-8") as out:
            for chunk in _chunks(read_rows(input_path), chunk_rows):
                verdicts = verify_batch(verifier, [r["completion"] for r in chunk], chunk, timeout_s=timeout_s,
                                        finish_reasons=[r.get("finish_reason", "stop") for r in chunk])
                for row, verdict in zip(chunk, verdicts):
                    counts[verdict.status] += 1
                    if verdict.status == "unverifiable" and first_unverifiable is None:
                        first_unverifiable = verdict.reason
                    out.write(json.dumps({**row, **verdict.to_dict()}) + "\n")
                print(f"rlvr verify: {sum(counts.values())} rows judged", file=log, flush=True)
        os.replace(tmp, output_path)
    finally:
        tmp.unlink(missing_ok=True)
    seconds = time.perf_counter() - t0
    rows = sum(counts.values())
    summary = {"verifier": verifier_name, "rows": rows, **{s: counts.get(s, 0) for s in VERDICT_STATUSES},
               "seconds": round(seconds, 3), "rows_per_second": round(rows / seconds, 1) if seconds > 0 else None}
    print("rlvr verify: " + ", ".join(f"{k}={v}" for k, v in summary.items()), file=log, flush=True)
    if rows and counts.get("unverifiable", 0) == rows:
        raise VerifyInputError(f"every row is unverifiable: the verifier could not judge any of them (first reason: "
                               f"{first_unverifiable}). Check that the rows carry the fields {verifier_name!r} reads, "
                               f"and that the verifier runs (rlvr verify prints its error per row in {output_path})")
    return summary
