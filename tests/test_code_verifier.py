"""The code verifier: both test formats, partial credit, extraction, and the reward hacks it
must refuse. Every program here really runs in the sandbox."""

import json
import secrets

import pytest

from sandbox import SandboxPool, run
from verifiers import get_verifier, verify_batch
from verifiers.code import (code_partial, code_partial_batch, code_verifier, code_verifier_batch, extract_program,
                            normalize_output)

ADD = {"entry_point": "add",
       "tests": "METADATA = {}\n\ndef check(candidate):\n    assert True, 'not a test'\n"
                "    assert candidate(1, 2) == 3\n    assert candidate(20, 22) == 42\n    assert candidate(-1, 1) == 0\n"}
ADD_PROMPT = dict(ADD, prompt='from typing import List\n\n\ndef add(a: int, b: int) -> int:\n    """a + b"""\n')
SUM_IO = {"inputs": ["1 2\n", "3 4\n"], "outputs": ["3\n", "7\n"]}

# A record of the harness's shape: without the run's nonce it must count for nothing.
FAKE_RECORD = json.dumps({"nonce": "0" * 32, "passed": 3, "total": 3, "failure": "", "timeout": False,
                          "load_error": "", "test_error": "", "harness_error": ""})


def verdict(program, example=ADD, partial=False):
    return (code_partial if partial else code_verifier)(program, example)


# --------------------------------------------------------------------------------------------
# Format (a): tests + entry point
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("completion, example, status, reward", [
    ("def add(a, b):\n    return a + b\n", ADD, "correct", 1.0),
    ("def add(a, b):\n    return a - b\n", ADD, "incorrect", 0.0),
    ("def add(a, b):\n    return None\n", ADD, "incorrect", 0.0),
    ("def plus(a, b):\n    return a + b\n", ADD, "incorrect", 0.0),                 # no entry point
    ("def add(a, b):\n    return a +\n", ADD, "incorrect", 0.0),                    # syntax error
    ("def add(a, b):\n    raise ValueError('no')\n", ADD, "incorrect", 0.0),
    ("def add(a, b):\n    return float(a + b)\n", ADD, "correct", 1.0),              # 3.0 == 3: plain data
    ("import sys\ndef add(a, b):\n    print('debug', a, b)\n    print('err', file=sys.stderr)\n    return a + b\n",
     ADD, "correct", 1.0),                                                            # printing is harmless
    ("import sys\nsys.setrecursionlimit(100)\ndef add(a, b):\n    return add(a, b)\n", ADD, "incorrect", 0.0),
    # plain asserts naming the function (MBPP), given as a list
    ("def add(a, b):\n    return a + b\n", {"entry_point": "add", "tests": ["assert add(1, 2) == 3",
                                                                             "assert add(2, 2) == 4"]}, "correct", 1.0),
    ("def add(a, b):\n    return 3\n", {"entry_point": "add", "tests": "assert add(1, 2) == 3\nassert add(2, 2) == 4\n"},
     "incorrect", 0.0),
    # prompt: a continuation of it, or a full definition that relies on the prompt's imports
    ("    return a + b\n", ADD_PROMPT, "correct", 1.0),
    ("    return None\n", ADD_PROMPT, "incorrect", 0.0),
    ("Here:\n```python\ndef add(a: int, b: int) -> List[int]:\n    return a + b\n```\n", ADD_PROMPT, "correct", 1.0),
    ("```python\ndef add(a, b):\n    return a + b\n```", dict(ADD, prompt="Write a function add."), "correct", 1.0),
    # tests that use helpers of the prompt and modules the program imported (HumanEval/32 style)
    ("    return -c[0] / c[1]\n",
     {"entry_point": "root", "prompt": "import math\n\ndef poly(c, x):\n    return sum(a * x ** i for i, a in "
      "enumerate(c))\n\ndef root(c):\n    '''zero of a line'''\n",
      "tests": "def check(candidate):\n    assert math.fabs(poly([2, 4], candidate([2, 4]))) < 1e-9\n"}, "correct", 1.0),
    # a test that expects an exception
    ("def inv(x):\n    if x == 0:\n        raise ValueError('zero')\n    return 1 / x\n",
     {"entry_point": "inv", "tests": "def check(candidate):\n    try:\n        candidate(0)\n        assert False\n"
      "    except ValueError:\n        pass\n    assert candidate(2) == 0.5\n"}, "correct", 1.0),
    # containers, tuples vs lists, dicts and sets come back as what they are
    ("def f():\n    return [(1, 'a'), {'k': {2.5, None}}, frozenset({b'x'}), 1j, True]\n",
     {"entry_point": "f", "tests": "assert f() == [(1, 'a'), {'k': {2.5, None}}, frozenset({b'x'}), 1j, True]"},
     "correct", 1.0),
    ("def f():\n    return [1, 2]\n", {"entry_point": "f", "tests": "assert f() == (1, 2)"}, "incorrect", 0.0),
])
def test_tests_format(completion, example, status, reward):
    v = verdict(completion, example)
    assert (v.status, v.reward) == (status, reward), v


def test_reasons_name_what_failed():
    assert "does not define a function 'add'" in verdict("def plus(a, b):\n    return a + b\n").reason
    assert "SyntaxError" in verdict("def add(a, b):\n    return a +\n").reason
    assert "candidate(1, 2) == 3" in verdict("def add(a, b):\n    return 0\n").reason
    assert "ValueError" in verdict("def add(a, b):\n    raise ValueError('no')\n").reason


@pytest.mark.parametrize("program, reason", [
    ("def add(a, b):\n    while True:\n        pass\n", "timeout"),
    ("while True:\n    pass\n", "timeout"),
    ("def add(a, b):\n    return bytearray(4 << 30)\n", "MemoryError"),
    ("import sys\ndef add(a, b):\n    while True:\n        sys.stderr.write('x' * 65536)\n", "output limit"),
])
def test_limits_are_model_failures(program, reason):
    v = verdict(program, dict(ADD, time_limit_s=1.5, memory_mb=256))
    assert (v.status, v.reward) == ("incorrect", 0.0) and reason in v.reason, v


# --------------------------------------------------------------------------------------------
# Reward hacks: none of them may pass
# --------------------------------------------------------------------------------------------
HACKS = {
    "sys.exit(0) at import": "import sys\ndef add(a, b):\n    return a + b\nsys.exit(0)\n",
    "sys.exit(0) inside the function": "import sys\ndef add(a, b):\n    sys.exit(0)\n",
    "raise SystemExit at import": "def add(a, b):\n    return None\nraise SystemExit\n",
    "raise SystemExit inside the function": "def add(a, b):\n    raise SystemExit(0)\n",
    "os._exit(0) at import": "import os\ndef add(a, b):\n    return None\nos._exit(0)\n",
    "os._exit(0) inside the function": "import os\ndef add(a, b):\n    os._exit(0)\n",
    "exit() builtin": "def add(a, b):\n    exit()\n",
    "atexit prints success": (
        f"import atexit, os, sys\nFAKE = {FAKE_RECORD!r}\n"
        "atexit.register(lambda: (print(FAKE), os.write(1, (FAKE + '\\n').encode())))\n"
        "def add(a, b):\n    sys.exit(0)\n"),
    "excepthook override": (
        f"import sys, threading\nFAKE = {FAKE_RECORD!r}\n"
        "sys.excepthook = lambda *a: print(FAKE)\nthreading.excepthook = lambda *a: print(FAKE)\n"
        "def add(a, b):\n    raise ValueError('nope')\n"),
    "printing a fake success line": (
        f"import os, sys\nFAKE = {FAKE_RECORD!r}\nprint(FAKE)\nprint('all tests passed')\n"
        "def add(a, b):\n    print(FAKE)\n    sys.stdout.flush()\n    os.write(1, (FAKE + '\\n').encode())\n"
        "    os.write(2, (FAKE + '\\n').encode())\n    return None\n"),
    "an object whose __eq__ says True": (
        "class AlwaysEqual:\n    def __eq__(self, other):\n        return True\n"
        "    def __ne__(self, other):\n        return False\n    __hash__ = object.__hash__\n"
        "def add(a, b):\n    return AlwaysEqual()\n"),
    "a str subclass with a lying __eq__": (
        "class S(str):\n    def __eq__(self, other):\n        return True\n    __hash__ = str.__hash__\n"
        "def add(a, b):\n    return S('nope')\n"),
    "an int subclass with a lying __eq__": (
        "class I(int):\n    def __eq__(self, other):\n        return True\n    __hash__ = int.__hash__\n"
        "def add(a, b):\n    return I(0)\n"),
    "killing the parent harness": (
        f"import os, signal\nFAKE = {FAKE_RECORD!r}\n"
        "def add(a, b):\n    for pid in (os.getppid(), 1, -1):\n        try:\n"
        "            os.kill(pid, signal.SIGKILL)\n        except OSError:\n            pass\n"
        "    print(FAKE)\n    os.write(1, (FAKE + '\\n').encode())\n    os._exit(0)\n"),
    "threads that exit with status 0 during the tests": (
        "import os, threading, time\n"
        "threading.Thread(target=lambda: (time.sleep(0.05), os._exit(0))).start()\n"
        "def add(a, b):\n    time.sleep(0.5)\n    return None\n"),
    "a thread printing success after the tests": (
        f"import threading, time\nFAKE = {FAKE_RECORD!r}\n"
        "threading.Thread(target=lambda: [print(FAKE, flush=True) or time.sleep(0.01) for _ in range(100)]).start()\n"
        "def add(a, b):\n    return None\n"),
    "patching the harness in its own process": (
        "import __main__, marshal\n__main__.plain_error = lambda value: None\n"
        "class AlwaysEqual:\n    def __eq__(self, other):\n        return True\n"
        "def add(a, b):\n    return AlwaysEqual()\n"),
    "writing to stdout of the harness through /proc": (
        f"import os\nFAKE = {FAKE_RECORD!r}\n"
        "def add(a, b):\n    for pid in os.listdir('/proc'):\n        try:\n"
        "            fd = os.open(f'/proc/{pid}/fd/1', os.O_WRONLY)\n"
        "            os.write(fd, (FAKE + '\\n').encode())\n        except OSError:\n            pass\n"
        "    return None\n"),
}


@pytest.mark.parametrize("name", list(HACKS))
@pytest.mark.parametrize("partial", [False, True], ids=["all", "partial"])
def test_hacks_fail(name, partial):
    v = verdict(HACKS[name], partial=partial)
    assert (v.status, v.reward) == ("incorrect", 0.0), v


def test_always_equal_inside_containers_fails():
    example = {"entry_point": "pair", "tests": "def check(candidate):\n    assert candidate() == [1, 2]\n"}
    program = ("class E:\n    def __eq__(self, other):\n        return True\n    __hash__ = object.__hash__\n"
               "def pair():\n    return [E(), E()]\n")
    v = verdict(program, example)
    assert (v.status, v.reward) == ("incorrect", 0.0) and "type E" in v.reason, v
    assert verdict("def pair():\n    return [1, 2]\n", example).status == "correct"


def test_shadowing_builtins_or_test_imports_fails():
    example = {"entry_point": "half", "tests": "import fractions\n\ndef check(candidate):\n"
               "    assert abs(candidate(1) - 0.5) < 1e-9\n"
               "    assert fractions.Fraction(candidate(1)) == fractions.Fraction(1, 2)\n"}
    # Defines `abs` (the tests' builtin) and plants fractions.py where the tests might import it.
    program = ("import os\nfor d in ('.', '/tmp'):\n"
               "    with open(os.path.join(d, 'fractions.py'), 'w') as f:\n"
               "        f.write('Fraction = lambda *a: 0\\n')\n"
               "import fractions\n\ndef abs(x):\n    return 0\n\ndef half(x):\n    return 7\n")
    v = verdict(program, example, partial=True)
    assert (v.status, v.reward) == ("incorrect", 0.0), v
    assert verdict("def half(x):\n    return x / 2\n", example).status == "correct"


def test_redefining_the_prompts_helpers_fails():
    # HumanEval/32 style: the tests judge the answer with the prompt's `poly`; a model that
    # redefines `poly` to return 0 must not pass with any root.
    example = {"entry_point": "root", "prompt": "import math\n\ndef poly(c, x):\n    return sum(a * x ** i for i, a "
               "in enumerate(c))\n\ndef root(c):\n    '''zero of a line'''\n",
               "tests": "def check(candidate):\n    assert math.fabs(poly([2, 4], candidate([2, 4]))) < 1e-9\n"}
    hack = "```python\ndef poly(c, x):\n    return 0\n\ndef root(c):\n    return 123\n```"
    v = verdict(hack, example)
    assert (v.status, v.reward) == ("incorrect", 0.0), v
    assert verdict("```python\ndef root(c):\n    return -c[0] / c[1]\n```", example).status == "correct"


SCANNER = r'''
import gc, os, re, sys
PATTERN = re.compile(rb"s3cr3t-[0-9a-f]{16}")

def _read(path, size=1 << 22):
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # (never wait on a pipe)
    try:
        try:
            return os.pread(fd, size, 0)
        except OSError:
            return os.read(fd, size)
    finally:
        os.close(fd)

def _places():
    yield lambda: sys.stdin.buffer.read()
    yield lambda: os.pread(0, 1 << 20, 0)
    for d in (".", "/tmp", "/dev/shm"):
        for name in os.listdir(d):
            yield lambda d=d, name=name: _read(os.path.join(d, name))
    for pid in os.listdir("/proc"):
        if not pid.isdigit() and pid != "self":
            continue
        for name in ("cmdline", "environ"):
            yield lambda pid=pid, name=name: _read(f"/proc/{pid}/{name}")
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            fds = []
        for fd in fds:
            yield lambda pid=pid, fd=fd: _read(f"/proc/{pid}/fd/{fd}")
    def objects():
        out = []
        for o in gc.get_objects():
            values = o.values() if type(o) is dict else o if type(o) in (list, tuple) else ()
            out.extend(v.encode("utf-8", "replace") for v in values if type(v) is str)
        return b"\n".join(out)
    yield objects
    def frames():
        f, out = sys._getframe(), []
        while f is not None:
            out.append(repr(f.f_locals).encode() + repr(f.f_code.co_consts).encode())
            f = f.f_back
        return b"\n".join(out)
    yield frames
    def memory():  # every page of this process where data can live
        with open("/proc/self/maps") as maps, open("/proc/self/mem", "rb", 0) as mem:
            for line in maps:
                span, perms = line.split()[:2]
                if perms[:2] != "rw" or "[v" in line:
                    continue
                lo, hi = (int(x, 16) for x in span.split("-"))
                try:
                    mem.seek(lo)
                    found = PATTERN.search(mem.read(hi - lo))
                except (OSError, ValueError, OverflowError):
                    continue
                if found:
                    return found.group()
        return b""
    yield memory

def find_secret():
    for place in _places():
        try:
            found = PATTERN.search(place() or b"")
        except Exception:
            continue
        if found:
            return found.group().decode()
    return None
'''


def test_the_program_cannot_read_the_tests():
    secret = "s3cr3t-" + secrets.token_hex(8)
    example = {"entry_point": "leak", "tests": f"def check(candidate):\n    assert candidate() == {secret!r}\n"}
    program = SCANNER + "\nAT_IMPORT = find_secret()\n\ndef leak():\n    return AT_IMPORT or find_secret()\n"
    v = verdict(program, example)
    assert (v.status, v.reward) == ("incorrect", 0.0) and "AssertionError" in v.reason, v
    # The scanner does find the secret where a program could see it: on stdin, in its memory.
    control = run(SCANNER + "\nprint(find_secret())\n", stdin=f"tests: {secret}\n")
    assert control.stdout.strip() == secret, control
    control = run(SCANNER + f"\nKEEP = bytearray(b'{secret}')\nsys.stdin.close()\nprint(find_secret())\n")
    assert control.stdout.strip() == secret, control


# --------------------------------------------------------------------------------------------
# Partial credit
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("program, reward, status, reason", [
    ("def add(a, b):\n    return a + b\n", 1.0, "correct", "all 3"),
    ("def add(a, b):\n    return 3 if a == 1 else a + b + (a < 0)\n", 2 / 3, "incorrect", "2/3"),
    ("def add(a, b):\n    return 3\n", 1 / 3, "incorrect", "1/3"),
    ("def add(a, b):\n    return None\n", 0.0, "incorrect", "0/3"),
    ("def add(a, b):\n    if a < 0:\n        while True:\n            pass\n    return a + b\n", 2 / 3, "incorrect", "timeout"),
    # SystemExit fails that call only; os._exit ends the candidate process: no later call can pass
    ("import sys\ndef add(a, b):\n    if a == 20:\n        sys.exit(0)\n    return a + b\n", 2 / 3, "incorrect", "SystemExit"),
    ("import os\ndef add(a, b):\n    if a == 20:\n        os._exit(0)\n    return a + b\n", 1 / 3, "incorrect", "1/3"),
])
def test_partial_credit(program, reward, status, reason):
    v = verdict(program, dict(ADD, time_limit_s=1), partial=True)
    assert v.status == status and v.reward == pytest.approx(reward) and reason in v.reason, v
    assert verdict(program, dict(ADD, time_limit_s=1)).reward == (1.0 if status == "correct" else 0.0)


def test_partial_credit_counts_plain_asserts_and_io_cases():
    tests = "import math\nassert add(1, 2) == 3\nassert add(1, 1) == 2\nx = 5\nassert math.isclose(add(x, 1), 6)\n"
    v = code_partial("def add(a, b):\n    return 3\n", {"entry_point": "add", "tests": tests})
    assert (v.status, v.reward) == ("incorrect", pytest.approx(1 / 3)), v
    v = code_partial("a, b = map(int, input().split())\nprint(3)\n", SUM_IO)
    assert (v.status, v.reward) == ("incorrect", 0.5), v


# --------------------------------------------------------------------------------------------
# Format (b): stdin/stdout
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("program, example, status", [
    ("a, b = map(int, input().split())\nprint(a + b)\n", SUM_IO, "correct"),
    ("a, b = map(int, input().split())\nprint(a + b, '   ')\nprint()\nprint('  ')\n", SUM_IO, "correct"),  # trailing ws
    ("a, b = map(int, input().split())\nprint(a * b)\n", SUM_IO, "incorrect"),
    ("a, b = map(int, input().split())\nprint(' ', a + b)\n", SUM_IO, "incorrect"),                  # leading ws counts
    ("a, b = map(int, input().split())\nprint(a + b)\nprint(a + b)\n", SUM_IO, "incorrect"),          # an extra line
    ("import sys\na, b = map(int, input().split())\nprint(a + b)\nsys.exit(1)\n", SUM_IO, "incorrect"),
    ("n = int(input())\nfor i in range(n):\n    print(i)\n", {"inputs": ["3"], "outputs": ["0\n1\n2\n"]}, "correct"),
    # missing trailing lines: no zip that forgives them
    ("n = int(input())\nfor i in range(n - 1):\n    print(i)\n", {"inputs": ["3"], "outputs": ["0\n1\n2\n"]}, "incorrect"),
    ("import sys\nprint(0)\nsys.exit(0)\nprint(1)\n", {"inputs": [""], "outputs": ["0\n1\n"]}, "incorrect"),
    ("import os\nprint(0, flush=True)\nos._exit(0)\n", {"inputs": [""], "outputs": ["0\n1\n"]}, "incorrect"),
    ("print('')", {"inputs": [""], "outputs": ["0\n"]}, "incorrect"),
    ("while True:\n    pass\n", {"inputs": [""], "outputs": ["0\n"], "time_limit_s": 0.5}, "incorrect"),
])
def test_stdin_stdout_format(program, example, status):
    v = verdict(program, example)
    assert v.status == status, v


def test_normalize_output():
    assert normalize_output("1  \n2\t\n\n \n") == ["1", "2"]
    assert normalize_output("1\r\n2\r\n") == ["1", "2"]
    assert normalize_output("") == []
    assert normalize_output("\n\n1") == ["", "", "1"]


# --------------------------------------------------------------------------------------------
# Extraction, batches, unverifiable
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("completion, expected", [
    ("Text\n```python\nA = 1\n```\nmore\n```python\nB = 2\n```\nbye", "B = 2\n"),      # the last python block
    ("```\nA = 1\n```", "A = 1\n"),                                                    # a plain block
    ("```py\nA = 1\n```\n```\nB = 2\n```", "A = 1\n"),                                 # python beats untagged
    ("```Python3\nA = 1\n```", "A = 1\n"),
    ("```python\nA = 1\ndef f():", "A = 1\ndef f():\n"),                                # cut off mid-block
    ("def f():\n    return 1\n", "def f():\n    return 1\n"),                          # no block: everything
    ("```text\nhello\n```", None),                                                     # no python block
])
def test_extract_program(completion, expected):
    assert extract_program(completion) == expected


@pytest.mark.parametrize("completion, reason", [
    ("", "no code"),
    ("   \n", "no code"),
    ("```text\ndef add(a, b): return a + b\n```", "no python code block"),
])
def test_no_code_is_incorrect(completion, reason):
    v = verdict(completion)
    assert (v.status, v.reward) == ("incorrect", 0.0) and reason in v.reason, v


@pytest.mark.parametrize("example", [
    {},
    {"tests": "assert add(1, 2) == 3"},                                  # no entry point
    {"tests": "def check(candidate:\n    pass", "entry_point": "add"},   # tests do not parse
    {"tests": 42, "entry_point": "add"},
    {"tests": "assert add(1, 2) == 3", "entry_point": "not an identifier"},
    {"inputs": ["1 2"], "outputs": []},
    {"inputs": "1 2", "outputs": "3"},
    dict(ADD, time_limit_s=-1),
    dict(ADD, memory_mb="lots"),
])
@pytest.mark.parametrize("completion", ["def add(a, b):\n    return a + b\n", ""], ids=["code", "empty"])
def test_malformed_examples_are_unverifiable(example, completion):
    v = verdict(completion, example)
    assert (v.status, v.reward) == ("unverifiable", 0.0), v


@pytest.mark.parametrize("example", [
    {"tests": "import numpy\nassert add(1, 2) == 3", "entry_point": "add"},        # a module the sandbox lacks
    {"tests": "assert add(lambda: 1, 2) == 3", "entry_point": "add"},               # a non-data argument
    dict(ADD, prompt="import numpy\n\ndef add(a, b):\n    '''a + b'''\n"),          # a prompt that cannot run
])
def test_tests_that_cannot_run_in_the_sandbox_are_unverifiable(example):
    v = verdict("def add(a, b):\n    return a + b\n", example)
    assert (v.status, v.reward) == ("unverifiable", 0.0) and "cannot run" in v.reason, v


def test_sandbox_error_is_unverifiable_not_a_model_failure():
    # A real sandbox failure: every worker fails to start (an interpreter that does not exist).
    with SandboxPool(1, isolation="bwrap-per-run", python="/nonexistent/python3") as pool:
        verdicts = code_verifier_batch(["def add(a, b):\n    return a + b\n", "print(3)\nprint(7)\n", ""],
                                       [ADD, SUM_IO, ADD], pool=pool)
    assert [v.status for v in verdicts] == ["unverifiable", "unverifiable", "incorrect"]
    assert all("sandbox error" in v.reason for v in verdicts[:2])


def test_batch_keeps_input_order_and_registry_dispatches_to_it():
    good, bad = "def add(a, b):\n    return a + b\n", "def add(a, b):\n    return 0\n"
    io_good = "a, b = map(int, input().split())\nprint(a + b)\n"
    completions = [good, bad, io_good, "", bad, good, io_good]
    examples = [ADD, ADD, SUM_IO, ADD, {}, ADD_PROMPT, SUM_IO]
    expected = ["correct", "incorrect", "correct", "incorrect", "unverifiable", "correct", "correct"]
    assert [v.status for v in code_verifier_batch(completions, examples)] == expected
    assert [v.status for v in code_partial_batch(completions, examples)] == expected
    assert get_verifier("code").fn is code_verifier and get_verifier("code").batch is code_verifier_batch
    assert get_verifier("code_partial").fn is code_partial and get_verifier("code_partial").batch is code_partial_batch
    assert [v.status for v in verify_batch(get_verifier("code"), completions, examples)] == expected
    with pytest.raises(ValueError):
        code_verifier_batch([good], [])
