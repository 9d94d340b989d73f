"""Command line: `python -m sandbox run|batch|check`."""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
from pathlib import Path
from typing import Any

from . import isolation as iso
from .limits import Limits
from .job import make_job
from .pool import SandboxPool, run
from .result import ExecResult, Status
from .worker import Worker

EXIT_OK, EXIT_PROGRAM_FAILED, EXIT_USAGE, EXIT_SANDBOX_ERROR = 0, 1, 2, 3


def _limits(args: argparse.Namespace) -> Limits:
    kw: dict[str, Any] = {}
    if args.timeout is not None:
        kw["timeout_s"] = args.timeout
    if args.memory_mb is not None:
        kw["memory_mb"] = args.memory_mb
    if getattr(args, "max_output_bytes", None) is not None:
        kw["max_output_bytes"] = args.max_output_bytes
    return Limits(**kw)


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                   help=f"wall-clock limit per program (default {Limits().timeout_s:g})")
    p.add_argument("--memory-mb", type=int, default=None, metavar="N",
                   help=f"memory limit per program in MiB (default {Limits().memory_mb})")
    p.add_argument("--max-output-bytes", type=int, default=None, metavar="N",
                   help=f"cap on each of stdout and stderr (default {Limits().max_output_bytes})")
    p.add_argument("--isolation", choices=iso.ISOLATIONS, default="bwrap",
                   help="bwrap (default), bwrap-per-run, or none (NO isolation: never for untrusted code)")
    p.add_argument("--allow-unsafe", action="store_true",
                   help="if bubblewrap is unavailable, run with weaker isolation instead of failing")


def cmd_run(args: argparse.Namespace) -> int:
    try:
        program = Path(args.program).read_bytes().decode("utf-8", "surrogateescape")
        stdin = Path(args.stdin).read_bytes() if args.stdin else b""
        files = {}
        for spec in args.file or []:
            name, _, path = spec.partition("=")
            files[name] = Path(path or name).read_bytes()
        limits = _limits(args)
        job = make_job(program, stdin, files, limits)  # validate before starting anything
    except (OSError, ValueError, TypeError) as e:
        print(f"sandbox run: {e}", file=sys.stderr)
        return EXIT_USAGE
    # One program: a fresh bubblewrap sandbox just for it.
    isolation = "bwrap-per-run" if args.isolation == "bwrap" else args.isolation
    worker = None
    try:
        if isolation == "bwrap-per-run":
            worker = Worker(iso.resolve_isolation(isolation, args.allow_unsafe))
            try:
                result = worker.run(job)
            finally:
                worker.kill(wait=False)
        else:
            result = run(program, stdin, limits, files, isolation=isolation, allow_unsafe=args.allow_unsafe)
    except iso.SandboxUnavailable as e:
        print(f"sandbox run: {e}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return _report(args, result)
    finally:
        if worker is not None:
            # The result is out; now make sure nothing of the sandbox outlives this command (its
            # processes are killed already, but the kernel may still be tearing them down).
            worker.wait_teardown()


def _report(args: argparse.Namespace, result: ExecResult) -> int:
    if args.json:
        print(result.to_json())  # (ASCII-only: one line for every line-splitting convention)
    else:
        out = _for_terminal(result.stdout, sys.stdout)
        err = _for_terminal(result.stderr, sys.stderr)
        sys.stdout.write(out)
        sys.stdout.flush()
        sys.stderr.write(err)
        # The status line starts a line of its own, whatever the program's last bytes were: on
        # stderr, or on stdout too when both streams go to the same place (a terminal, 2>&1).
        last = err or (out if _same_file(sys.stdout, sys.stderr) else "")
        sys.stderr.write(("" if not last or last.endswith("\n") else "\n") + status_line(result) + "\n")
    sys.stdout.flush()
    sys.stderr.flush()
    if result.status is Status.OK:
        return EXIT_OK
    return EXIT_SANDBOX_ERROR if result.status is Status.SANDBOX_ERROR else EXIT_PROGRAM_FAILED


def status_line(result: ExecResult) -> str:
    """`[sandbox] status=...`, on one line (an error's own line breaks become spaces)."""
    sig = f" signal={result.signal_name}" if result.signal is not None else ""
    error = f" ({' '.join(result.error.splitlines())})" if result.error else ""
    return (f"[sandbox] status={result.status.value} exit_code={result.exit_code}{sig} "
            f"duration={result.duration:.3f}s{error}")


def _same_file(a, b) -> bool:
    try:
        return os.path.samestat(os.fstat(a.fileno()), os.fstat(b.fileno()))
    except (AttributeError, OSError, ValueError):
        return False


_CONTROL = {c: f"\\x{c:02x}" for c in [*range(0x00, 0x09), *range(0x0b, 0x20), 0x7f]}


def _for_terminal(text: str, stream) -> str:
    """Untrusted output shown on a terminal: control characters (escape sequences) escaped."""
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    if not tty:
        return text
    return text.translate(_CONTROL).translate({c: f"\\x{c:02x}" for c in range(0x80, 0xa0)})


def _rows(path: str):
    stream = sys.stdin if path == "-" else open(path, encoding="utf-8")
    with stream:
        for lineno, line in enumerate(stream, 1):
            if line.strip():
                yield lineno, line


def cmd_batch(args: argparse.Namespace) -> int:
    limits = _limits(args)
    if args.input != "-" and not Path(args.input).is_file():
        print(f"sandbox batch: no such file: {args.input}", file=sys.stderr)
        return EXIT_USAGE
    try:
        pool = SandboxPool(args.workers, limits=limits, isolation=args.isolation, allow_unsafe=args.allow_unsafe)
    except (iso.SandboxUnavailable, ValueError) as e:
        print(f"sandbox batch: {e}", file=sys.stderr)
        return EXIT_USAGE
    invalid: list[int] = []
    counts: collections.Counter[str] = collections.Counter()
    with pool:
        futures = []
        for lineno, line in _rows(args.input):
            try:
                row = json.loads(line)
                if not isinstance(row, dict):
                    raise ValueError("a row must be a JSON object")
                futures.append(pool._submit_job(pool._to_job(row, None)))
            except (ValueError, TypeError) as e:
                # The row keeps its place in the output (so that output line N answers input row N),
                # and is named on stderr at once.
                print(f"sandbox batch: {args.input}: line {lineno}: invalid row: {e}", file=sys.stderr)
                invalid.append(lineno)
                futures.append(ExecResult.sandbox_error(f"invalid input row {lineno}: {e}",
                                                        isolation=pool.isolation))
        for f in futures:
            result = f if isinstance(f, ExecResult) else f.result()
            counts[result.status.value] += 1
            sys.stdout.write(result.to_json() + "\n")
            sys.stdout.flush()
    counts["sandbox_error"] -= len(invalid)
    parts = [f"{n} {status}" for status, n in sorted(counts.items()) if n > 0]
    if invalid:
        parts.append(f"{len(invalid)} invalid (line{'s' if len(invalid) > 1 else ''} "
                     f"{', '.join(map(str, invalid[:20]))}{', ...' if len(invalid) > 20 else ''})")
    print(f"sandbox batch: {len(futures)} rows: {', '.join(parts) or 'none'}", file=sys.stderr)
    if invalid:
        return EXIT_USAGE
    return EXIT_SANDBOX_ERROR if counts["sandbox_error"] > 0 else EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    from .checks import check_isolation
    report = check_isolation(args.isolation, args.allow_unsafe)
    print(report.to_json() if args.json else str(report))
    return EXIT_OK if report.ok else EXIT_PROGRAM_FAILED


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sandbox",
                                 description="Isolated execution of untrusted Python programs.")
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="run one program; print its result")
    p.add_argument("program", help="the program's source file")
    p.add_argument("--stdin", metavar="FILE", help="file to give the program as standard input")
    p.add_argument("--file", action="append", metavar="NAME[=PATH]",
                   help="extra file for the program's working dir (repeatable)")
    p.add_argument("--json", action="store_true", help="print one JSON ExecResult")
    _add_common(p)
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("batch", help='run every row {"program": str, "stdin": str?} of a JSONL file')
    p.add_argument("input", help="JSONL file ('-' for standard input)")
    p.add_argument("--workers", type=int, default=None, help="pool size (default: three times the CPUs)")
    _add_common(p)
    p.set_defaults(func=cmd_batch)
    p = sub.add_parser("check", help="say which isolation is active and why")
    p.add_argument("--json", action="store_true")
    p.add_argument("--isolation", choices=iso.ISOLATIONS, default="bwrap")
    p.add_argument("--allow-unsafe", action="store_true")
    p.set_defaults(func=cmd_check)
    args = ap.parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
