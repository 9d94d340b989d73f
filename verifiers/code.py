"""Code verifier: run the model's program in the sandbox against the example's tests.

The program is the last fenced ``python`` block of the completion (else the last untagged
fenced block; with no fence at all, the whole completion). Two test formats:

(a) HumanEval / MBPP style: ``tests`` (Python source: a ``check(candidate)`` function, or
    plain asserts naming the function; a list of assert strings is joined) and
    ``entry_point`` (the function's name). Optional ``prompt`` (HumanEval's signature and
    docstring): if the program does not define ``entry_point`` at top level, the completion
    continues the prompt and the program is ``prompt + code``; if it does, and the prompt is
    valid Python, the program is ``prompt + "\\n" + code``, so that the prompt's imports and
    helpers stay available and the model's definition replaces the stub. The tests themselves
    see the prompt's helpers as the prompt wrote them, never the model's versions of them
    (``trusted_prelude``).
(b) stdin/stdout: ``inputs`` and ``outputs`` (lists of str). Each case is a separate sandboxed
    run with its stdin; its stdout must equal the expected output line by line after trailing
    whitespace is stripped from each line and trailing empty lines are dropped (a missing or
    an extra line fails). The run must also exit with status 0.

Optional per example: ``time_limit_s`` (the whole test suite in (a), each case in (b); default
10) and ``memory_mb`` (default 1024).

How (a) is judged: see ``verifiers/_code_harness.py``. The tests never enter the candidate's
process; they run in a harness process that calls the candidate's functions over a pipe, and
that alone holds stdout, where it writes a record with a per-run random nonce after every test
ran. Arguments and return values cross as data of builtin and standard-library types
(``verifiers/_code_wire.py``: containers of ``collections``, namedtuples, Fraction, Decimal;
iterators are read to their end, at most 2M values), rebuilt from the harness's own classes (so
no ``__eq__`` can lie); what a function does to its arguments is written back into the tests'
objects, and a returned argument is the tests' own object. An exception from the candidate
never steers the tests' code (StopIteration arrives as RuntimeError; an exit, a timeout or a
value that cannot be compared fails its test even inside the tests' ``except:``); data the
tests pass back that is over the limits grew from the candidate's output: its failure. Here,
in the trusted parent, only a well-formed record with the right nonce from a run that ended
normally counts. Exiting early (``sys.exit``, ``os._exit``), atexit or excepthook tricks, killing the
harness, threads or printing a fake success line can fail tests, never pass them.

Verdicts: ``correct`` (reward 1) when every test passes; ``incorrect`` for failing tests,
crashes, timeouts, memory and output limits, a missing code block or function, each with a
reason; ``unverifiable`` only when the verifier or the sandbox failed (malformed example,
sandbox error, tests that cannot run here). ``code_partial`` rewards the fraction of tests
passed (each assert statement of ``check`` or of the plain asserts counts, or each case in
(b)); its status is ``correct`` only if all pass and nothing else in the tests failed (a
statement that is no test failing after the last test counts as one test more that failed).
"""

from __future__ import annotations

import ast
import functools
import hmac
import importlib.util
import json
import marshal
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import sandbox
from sandbox import ExecResult, Limits, SandboxPool, SandboxUnavailable, Status
from verifiers.registry import register
from verifiers.types import Verdict

DEFAULT_TIME_LIMIT_S = 10.0
DEFAULT_MEMORY_MB = 1024
PYTHON_FENCE_TAGS = ("python", "python3", "py", "py3")
SOLUTION_FILE = "solution.py"   # where the harness finds the candidate program (format a)
# The harness program (format a): the value codec it shares with the candidate process, then
# the harness. Compiling its ~1000 lines would cost each run more than all its other Python
# work, so it also travels compiled, and the program itself is a loader that runs the compiled
# code when the sandbox's interpreter has this one's bytecode magic number (else the source).
HARNESS_SOURCE = (Path(__file__).with_name("_code_wire.py").read_text() + "\n\n"
                  + Path(__file__).with_name("_code_harness.py").read_text())
HARNESS_FILE, HARNESS_CODE_FILE = "harness.py", "harness.pyc"
HARNESS_CODE = importlib.util.MAGIC_NUMBER + marshal.dumps(
    compile(HARNESS_SOURCE, HARNESS_FILE, "exec", dont_inherit=True, optimize=0))
HARNESS_LOADER = f"""import marshal
import sys

with open({HARNESS_CODE_FILE!r}, "rb") as f:
    code = f.read()
magic = getattr(sys.modules.get("_frozen_importlib_external"), "MAGIC_NUMBER", None)
if magic and code.startswith(magic):
    code = marshal.loads(code[len(magic):])
else:
    with open({HARNESS_FILE!r}, "rb") as f:
        code = compile(f.read(), {HARNESS_FILE!r}, "exec", dont_inherit=True)
exec(code)
"""

_STATUS_REASONS = {Status.TIMEOUT: "timeout", Status.MEMORY_LIMIT: "memory limit exceeded",
                   Status.OUTPUT_LIMIT: "output limit exceeded", Status.RUNTIME_ERROR: "runtime error"}


class MalformedExample(ValueError):
    """The example cannot be judged (missing or ill-typed fields, tests that do not parse)."""


# --------------------------------------------------------------------------------------------
# The program
# --------------------------------------------------------------------------------------------
def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """``(tag, body)`` of each fenced block (```` ```tag ````), in order; a block still open at
    the end of the text (a truncated generation) runs to the end."""
    blocks: list[tuple[str, str]] = []
    tag: str | None = None
    body: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if tag is None:
            if stripped.startswith("```"):
                tag = stripped[3:].strip().lower().split(" ")[0] if stripped[3:].strip() else ""
                body = []
        elif stripped == "```":
            blocks.append((tag, "\n".join(body) + "\n"))
            tag = None
        else:
            body.append(line)
    if tag is not None:
        blocks.append((tag, "\n".join(body) + "\n"))
    return blocks


def extract_program(completion: str) -> str | None:
    """The last ```` ```python ```` block, else the last untagged block, else (no fence at all)
    the whole completion; None when the fenced blocks are all in other languages."""
    blocks = fenced_blocks(completion)
    if not blocks:
        return completion
    for wanted in (PYTHON_FENCE_TAGS, ("",)):
        bodies = [body for tag, body in blocks if tag in wanted]
        if bodies:
            return bodies[-1]
    return None


def defines(code: str, name: str) -> bool:
    """Does ``code`` bind ``name`` at module level (def, class, assignment or import, also
    inside top-level if/try/with blocks)? False if it does not parse."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    todo = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
            return True
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            if any((alias.asname or alias.name.partition(".")[0]) == name for alias in node.names):
                return True
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(n, ast.Name) and n.id == name for t in targets for n in ast.walk(t)):
                return True
        elif isinstance(node, (ast.If, ast.Try, ast.With, ast.For, ast.While)):
            for field in ("body", "orelse", "finalbody"):
                todo.extend(getattr(node, field, []))
            todo.extend(stmt for handler in getattr(node, "handlers", []) for stmt in handler.body)
    return False


def _parses(source: str) -> bool:
    try:
        ast.parse(source)
        return True
    except (SyntaxError, ValueError):
        return False


def _is_stub(node: ast.stmt) -> bool:
    """A function whose body is only a docstring, ``pass`` or ``...``: for the model to write."""
    return isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and all(
        isinstance(s, ast.Pass) or (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))
        for s in node.body)


@functools.lru_cache(maxsize=4096)
def trusted_prelude(prompt: str | None) -> str:
    """The prompt's code without its stubs (``""`` if it is not Python): the test harness runs
    it itself, so that helpers the tests call (HumanEval's ``poly``, ``encode_cyclic``) are the
    prompt's, not ones the model redefined to make its answer look right."""
    if not prompt:
        return ""
    try:
        tree = ast.parse(prompt)
    except (SyntaxError, ValueError):
        return ""
    kept = [node for node in tree.body if not _is_stub(node)]
    return ast.unparse(ast.Module(body=kept, type_ignores=[])) + "\n" if kept else ""


def build_program(code: str, entry_point: str, prompt: str | None) -> str:
    """The program to run for format (a); see the module docstring for the ``prompt`` rule."""
    if not prompt:
        return code
    if not defines(code, entry_point):
        return prompt + code
    if _parses(prompt):
        return prompt + "\n" + code
    return code


# --------------------------------------------------------------------------------------------
# Tests of format (a), split into units
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TestPlan:
    """The tests as units run one after the other in one namespace. A counted unit is a test
    (a statement holding a non-trivial assert); the others are setup (imports, assignments)."""

    units: tuple[tuple[str, bool, bool], ...]   # (source, counted, is an import)
    candidate_name: str                         # the name the units call the entry point by

    @property
    def total(self) -> int:
        return sum(1 for _, counted, _ in self.units if counted)


def _is_test(stmt: ast.stmt) -> bool:
    """Holds an assert that can fail: ``assert False`` (reached where an expected exception was
    not raised) is one; ``assert True, 'not a test'`` is not."""
    return any(isinstance(node, ast.Assert) and not (isinstance(node.test, ast.Constant) and node.test.value)
               for node in ast.walk(stmt))


def _compiles(source: str) -> bool:
    try:
        compile(source, "<tests>", "exec", dont_inherit=True)
        return True
    except (SyntaxError, ValueError):
        return False


def _calls_check(stmt: ast.stmt) -> bool:
    return (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call)
            and isinstance(stmt.value.func, ast.Name) and stmt.value.func.id == "check")


@functools.lru_cache(maxsize=4096)
def plan_tests(tests: str) -> TestPlan:
    """Split ``tests`` into units: with a ``check(candidate)`` function, the other top-level
    statements (setup; a top-level ``check(...)`` call is dropped) then each statement of
    ``check``'s body; otherwise each top-level statement. If a body statement cannot run at
    module level (``return``), or no statement is a test, the whole suite is one unit."""
    try:
        tree = ast.parse(tests)
    except (SyntaxError, ValueError) as exc:
        raise MalformedExample(f"the tests do not parse: {exc}") from None
    checks = [s for s in tree.body if isinstance(s, ast.FunctionDef) and s.name == "check"]
    if checks:
        check = checks[-1]
        params = check.args.posonlyargs + check.args.args
        candidate_name = params[0].arg if params else "candidate"
        setup = [s for s in tree.body if s is not check and not _calls_check(s)]
        body = check.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            body = body[1:]  # docstring
        whole = ast.unparse(ast.Module(body=setup + [check], type_ignores=[])) + f"\ncheck({candidate_name})\n"
    else:
        candidate_name, setup, body, whole = "candidate", [], tree.body, tests
    units = [(ast.unparse(s), False, isinstance(s, (ast.Import, ast.ImportFrom))) for s in setup]
    units += [(ast.unparse(s), _is_test(s), isinstance(s, (ast.Import, ast.ImportFrom))) for s in body]
    if not any(counted for _, counted, _ in units) or not all(_compiles(src) for src, _, _ in units):
        units = [(whole, True, False)]
    return TestPlan(tuple(units), candidate_name)


# --------------------------------------------------------------------------------------------
# One example: jobs for the sandbox, and judging their results
# --------------------------------------------------------------------------------------------
@dataclass
class _Pending:
    """The sandbox jobs of one completion and how to turn their results into a Verdict."""

    jobs: list[dict[str, Any]]
    judge: Callable[[list[ExecResult]], Verdict]


def _limits(example: Mapping[str, Any]) -> Limits:
    time_limit = example.get("time_limit_s", DEFAULT_TIME_LIMIT_S)
    memory = example.get("memory_mb", DEFAULT_MEMORY_MB)
    if isinstance(time_limit, bool) or not isinstance(time_limit, (int, float)) or not 0 < time_limit <= 3600:
        raise MalformedExample(f"time_limit_s must be a number of seconds in (0, 3600]; got {time_limit!r}")
    if isinstance(memory, bool) or not isinstance(memory, int) or not 16 <= memory <= 1 << 20:
        raise MalformedExample(f"memory_mb must be an integer number of MiB, at least 16; got {memory!r}")
    return Limits(timeout_s=float(time_limit), memory_mb=memory)


def _str_field(example: Mapping[str, Any], name: str) -> str:
    value = example.get(name)
    if not isinstance(value, str) or not value.strip():
        raise MalformedExample(f"example field {name!r} must be a non-empty string; got {value!r}"[:200])
    return value


def _str_list(example: Mapping[str, Any], name: str) -> list[str]:
    value = example.get(name)
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise MalformedExample(f"example field {name!r} must be a list of strings"[:200])
    return list(value)


def _plan(code: str, example: Mapping[str, Any], partial: bool) -> _Pending:
    """Raises MalformedExample for an example that cannot be judged."""
    if not isinstance(example, Mapping):
        raise MalformedExample(f"the example must be a mapping; got {type(example).__name__}")
    limits = _limits(example)
    if "tests" in example:
        tests = example["tests"]
        if isinstance(tests, (list, tuple)) and all(isinstance(t, str) for t in tests):
            tests = "\n".join(tests)
        if not isinstance(tests, str) or not tests.strip():
            raise MalformedExample("example field 'tests' must be Python source (a string or a list of strings)")
        entry_point = _str_field(example, "entry_point")
        if not entry_point.isidentifier():
            raise MalformedExample(f"entry_point must be a Python identifier; got {entry_point!r}")
        prompt = example.get("prompt")
        if prompt is not None and not isinstance(prompt, str):
            raise MalformedExample("example field 'prompt' must be a string")
        return _plan_tests(build_program(code, entry_point, prompt), trusted_prelude(prompt), plan_tests(tests),
                           entry_point, limits, partial)
    if "inputs" in example or "outputs" in example:
        inputs, outputs = _str_list(example, "inputs"), _str_list(example, "outputs")
        if len(inputs) != len(outputs) or not inputs:
            raise MalformedExample(f"inputs and outputs must be equally long and not empty "
                                   f"({len(inputs)} inputs, {len(outputs)} outputs)")
        return _plan_io(code, inputs, outputs, limits, partial)
    raise MalformedExample("the example needs 'tests' and 'entry_point', or 'inputs' and 'outputs'")


def _plan_tests(program: str, prelude: str, plan: TestPlan, entry_point: str, limits: Limits,
                partial: bool) -> _Pending:
    nonce = secrets.token_hex(16)
    margin = min(1.0, 0.25 * limits.timeout_s)  # the harness stops itself before the sandbox does
    job = {"nonce": nonce, "entry_point": entry_point, "candidate_name": plan.candidate_name, "prelude": prelude,
           "units": plan.units, "partial": partial, "budget_s": limits.timeout_s - margin}
    files = {SOLUTION_FILE: program, HARNESS_CODE_FILE: HARNESS_CODE, HARNESS_FILE: HARNESS_SOURCE}
    item = {"program": HARNESS_LOADER, "stdin": json.dumps(job), "files": files,
            "limits": limits}
    return _Pending([item], lambda results: _judge_tests(results[0], nonce, plan.total, partial))


def _fraction_verdict(passed: int, total: int, partial: bool, failure: str) -> Verdict:
    """``failure`` (why the run failed, "" if it did not) with every test passed: a unit that is
    no test (setup, a bare call) failed after the last test; the suite failed all the same, and
    counts as one test more that failed."""
    if total > 0 and passed == total and not failure:
        return Verdict("correct", 1.0, f"all {total} tests passed")
    reward = passed / (total + (passed == total)) if partial and total > 0 else 0.0
    return Verdict("incorrect", reward, f"{passed}/{total} tests passed; {failure}")


def _judge_tests(result: ExecResult, nonce: str, total: int, partial: bool) -> Verdict:
    if result.status is Status.SANDBOX_ERROR:
        return Verdict("unverifiable", 0.0, f"sandbox error: {_clip(result.error)}")
    if result.status is not Status.OK:
        return Verdict("incorrect", 0.0, f"{_STATUS_REASONS.get(result.status, result.status.value)}: "
                                         f"{result.error}; {_tail(result.stderr)}".rstrip("; "))
    record = _parse_record(result.stdout, nonce)
    if record is None:
        return Verdict("incorrect", 0.0, "no valid result record from the test harness")
    if record.get("harness_error"):
        return Verdict("unverifiable", 0.0, f"test harness failed: {record['harness_error']}")
    if record.get("test_error"):
        return Verdict("unverifiable", 0.0, f"tests cannot run: {record['test_error']}")
    if record.get("load_error"):
        why = "timeout" if record.get("timeout") else "the program failed to load"
        return Verdict("incorrect", 0.0, f"{why}: {record['load_error']}")
    passed, reported_total = record.get("passed"), record.get("total")
    if type(passed) is not int or reported_total != total or not 0 <= passed <= total:
        return Verdict("incorrect", 0.0, "no valid result record from the test harness")
    failure = ("timeout: " if record.get("timeout") else "") + str(record.get("failure", ""))
    return _fraction_verdict(passed, total, partial, failure)


def _parse_record(stdout: str, nonce: str) -> dict[str, Any] | None:
    """The harness's record: exactly one JSON line holding the right nonce, or None."""
    if not stdout.endswith("\n") or stdout.count("\n") != 1:
        return None
    try:
        record = json.loads(stdout)
    except ValueError:
        return None
    if not isinstance(record, dict) or not isinstance(record.get("nonce"), str):
        return None
    if not hmac.compare_digest(record["nonce"].encode(), nonce.encode()):
        return None
    return record


def normalize_output(text: str) -> list[str]:
    """Lines with trailing whitespace stripped, trailing empty lines dropped."""
    lines = [line.rstrip() for line in text.split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def compare_output(got: str, expected: str) -> str | None:
    """None if ``got`` matches ``expected`` line by line (after normalize_output), else why not."""
    got_lines, want_lines = normalize_output(got), normalize_output(expected)
    for i in range(max(len(got_lines), len(want_lines))):
        if i >= len(got_lines):
            return f"missing line {i + 1} (expected {want_lines[i][:80]!r})"
        if i >= len(want_lines):
            return f"extra line {i + 1} ({got_lines[i][:80]!r})"
        if got_lines[i] != want_lines[i]:
            return f"line {i + 1}: expected {want_lines[i][:80]!r}, got {got_lines[i][:80]!r}"
    return None


def _plan_io(code: str, inputs: list[str], outputs: list[str], limits: Limits, partial: bool) -> _Pending:
    jobs = [{"program": code, "stdin": case, "limits": limits} for case in inputs]
    return _Pending(jobs, lambda results: _judge_io(results, outputs, partial))


def _judge_io(results: list[ExecResult], outputs: list[str], partial: bool) -> Verdict:
    errors = [r for r in results if r.status is Status.SANDBOX_ERROR]
    if errors:
        return Verdict("unverifiable", 0.0, f"sandbox error: {_clip(errors[0].error)}")
    passed, failure = 0, ""
    for i, (result, expected) in enumerate(zip(results, outputs, strict=True)):
        if result.status is not Status.OK:
            why = f"{_STATUS_REASONS.get(result.status, result.status.value)} ({result.error}); {_tail(result.stderr)}"
        else:
            why = compare_output(result.stdout, expected)
        if why is None:
            passed += 1
        elif not failure:
            failure = f"case {i + 1}: {why}".rstrip("; ")
    return _fraction_verdict(passed, len(outputs), partial, failure)


def _clip(text: str | None, limit: int = 300) -> str:
    text = text or ""
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _tail(stderr: str, limit: int = 300) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    return lines[-1][-limit:] if lines else ""


# --------------------------------------------------------------------------------------------
# Batch
# --------------------------------------------------------------------------------------------
def _run_jobs(jobs: list[dict[str, Any]], pool: SandboxPool | None) -> list[ExecResult]:
    """All jobs at once on ``pool`` (default: the sandbox's shared pool), results in input
    order; jobs that got a sandbox error are retried once."""
    def run(batch: list[dict[str, Any]]) -> list[ExecResult]:
        if not batch:
            return []
        try:
            return pool.run_batch(batch) if pool is not None else sandbox.run_batch(batch)
        except SandboxUnavailable as exc:
            return [ExecResult.sandbox_error(f"sandbox unavailable: {exc}") for _ in batch]

    results = run(jobs)
    again = [i for i, r in enumerate(results) if r.status is Status.SANDBOX_ERROR]
    for i, result in zip(again, run([jobs[i] for i in again])):
        results[i] = result
    return results


def verify_code_batch(completions: Sequence[str], examples: Sequence[Mapping[str, Any]], *,
                      partial: bool = False, pool: SandboxPool | None = None) -> list[Verdict]:
    """Judge every completion against its example, all programs submitted to the sandbox at
    once; verdicts in input order. ``partial``: reward the fraction of tests passed."""
    if len(completions) != len(examples):
        raise ValueError(f"{len(completions)} completions but {len(examples)} examples")
    verdicts: list[Verdict | None] = [None] * len(completions)
    pending: list[tuple[int, _Pending]] = []
    for i, (completion, example) in enumerate(zip(completions, examples)):
        code = extract_program(completion) if isinstance(completion, str) else None
        try:
            if code is None:
                _plan("", example, partial)  # a malformed example is unverifiable even so
                verdicts[i] = Verdict("incorrect", 0.0, "no python code block")
            elif not code.strip():
                _plan("", example, partial)
                verdicts[i] = Verdict("incorrect", 0.0, "no code in the completion")
            else:
                pending.append((i, _plan(code, example, partial)))
        except MalformedExample as exc:
            verdicts[i] = Verdict("unverifiable", 0.0, f"malformed example: {exc}")
    results = _run_jobs([job for _, p in pending for job in p.jobs], pool)
    start = 0
    for i, p in pending:
        verdicts[i] = p.judge(results[start:start + len(p.jobs)])
        start += len(p.jobs)
    return [v for v in verdicts if v is not None]


def code_verifier_batch(completions: Sequence[str], examples: Sequence[Mapping[str, Any]], *,
                        pool: SandboxPool | None = None) -> list[Verdict]:
    """Batch form of ``code``: all programs go to the sandbox pool at once."""
    return verify_code_batch(completions, examples, partial=False, pool=pool)


def code_partial_batch(completions: Sequence[str], examples: Sequence[Mapping[str, Any]], *,
                       pool: SandboxPool | None = None) -> list[Verdict]:
    """Batch form of ``code_partial``."""
    return verify_code_batch(completions, examples, partial=True, pool=pool)


@register("code", batch=code_verifier_batch)  # runs its own sandboxed processes
def code_verifier(completion: str, example: Mapping[str, Any]) -> Verdict:
    """Correct (reward 1) iff the program passes every test; see the module docstring."""
    return code_verifier_batch([completion], [example])[0]


@register("code_partial", batch=code_partial_batch)
def code_partial(completion: str, example: Mapping[str, Any]) -> Verdict:
    """Reward = fraction of tests passed; correct only if all pass."""
    return code_partial_batch([completion], [example])[0]

