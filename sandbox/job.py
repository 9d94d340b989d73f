"""A job: one program with its stdin, extra files and limits, checked once when it is made."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Union

from .limits import Limits

Files = Mapping[str, Union[str, bytes]]


@dataclass(frozen=True)
class Job:
    program: str
    stdin: bytes = b""
    files: tuple[tuple[str, bytes], ...] = ()
    limits: Limits = Limits()


def make_job(program: str | bytes, stdin: str | bytes | None = None, files: Files | None = None,
             limits: Limits | None = None) -> Job:
    if isinstance(program, bytes):
        program = program.decode("utf-8", "surrogateescape")
    if not isinstance(program, str):
        raise TypeError(f"program must be str (Python source); got {type(program).__name__}")
    if stdin is None:
        stdin = b""
    if isinstance(stdin, str):
        stdin = stdin.encode("utf-8", "surrogateescape")
    if not isinstance(stdin, (bytes, bytearray)):
        raise TypeError(f"stdin must be str or bytes; got {type(stdin).__name__}")
    out = []
    for name, data in (files or {}).items():
        _check_file_name(name)
        if isinstance(data, str):
            data = data.encode("utf-8")
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError(f"files[{name!r}] must be str or bytes; got {type(data).__name__}")
        out.append((name, bytes(data)))
    if limits is None:
        limits = Limits()
    if not isinstance(limits, Limits):
        raise TypeError(f"limits must be a sandbox.Limits; got {type(limits).__name__}")
    return Job(program, bytes(stdin), tuple(out), limits)


def _check_file_name(name: str) -> None:
    if not isinstance(name, str) or not name or name.startswith("/") or "\0" in name:
        raise ValueError(f"files: {name!r} must be a relative path inside the working dir, e.g. 'data/input.txt'")
    parts = name.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"files: {name!r} must not contain '', '.' or '..' components")
    if name == "main.py":
        raise ValueError("files: 'main.py' is the program itself; choose another name")
