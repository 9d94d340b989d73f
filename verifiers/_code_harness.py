"""The in-sandbox harness of the code verifier, for tests given as Python (HumanEval / MBPP style).

This file is not imported by the trusted side: ``verifiers.code`` sends its source as the
sandboxed program's ``main.py``, the candidate program as the file ``solution.py`` and, on
stdin, one JSON job ``{"nonce", "entry_point", "candidate_name", "prelude", "units",
"partial", "budget_s"}``. It uses the standard library only.

Two processes, so that the candidate can neither see the tests nor speak for the harness:

* the **harness** (this process: pid 1 of the run's pid namespace) makes itself non-dumpable
  (its memory and /proc entries are closed to the candidate), forks the candidate process
  *before* it reads anything secret, then reads the job from stdin and closes stdin. It runs
  the test units itself; every call of a candidate function is a request over a pipe, and
  every answer comes back as ``marshal`` data checked to be plain builtin values
  (``plain_error``), so a returned object cannot lie about equality. After the last unit it
  writes one JSON record holding the nonce and the counts to stdout, which only it holds;
* the **candidate** process closes stdin and stdout at once (its prints go to stderr), loads
  ``solution.py`` as module ``solution``, reports the names it defines, and then answers
  call requests until the harness hangs up. Whatever it does - exiting, killing, threads,
  atexit or excepthook tricks, printing - can make calls fail, never write the record.

The record is ``{"nonce", "passed", "total", "failure", "timeout", "load_error",
"test_error", "harness_error"}``; the trusted parent accepts it only with the right nonce.
"""

import builtins
import json
import marshal
import os
import select
import sys
import time
import _signal  # (already loaded by the sandbox; `signal` would cost an import per run)

SOLUTION_FILE = "solution.py"
MAX_MESSAGE_BYTES = 64 << 20   # a larger reply from the candidate counts as a broken candidate
MAX_PLAIN_NODES = 2_000_000    # values bigger than this (or cyclic) are not plain data
PR_SET_DUMPABLE = 4
PLAIN_ATOMS = (int, float, complex, bool, str, bytes, type(None))
PLAIN_CONTAINERS = (list, tuple, dict, set, frozenset)
# Modules the harness imports (besides those it has loaded already) when the candidate's
# program did: pure ones, without side effects at import.
SHARED_MODULES = frozenset({
    "array", "bisect", "calendar", "cmath", "collections", "copy", "dataclasses", "datetime", "decimal",
    "enum", "fractions", "functools", "hashlib", "heapq", "itertools", "json", "math", "numbers", "operator",
    "random", "re", "statistics", "string", "struct", "textwrap", "typing", "unicodedata"})


# --------------------------------------------------------------------------------------------
# Shared by both processes
# --------------------------------------------------------------------------------------------
def plain_error(value):
    """None if ``value`` is plain builtin data, else what is wrong with it.

    Plain: int, float, complex, bool, str, bytes, None, and list/tuple/dict/set/frozenset of
    plain values, each checked with ``type(x) is ...`` (no subclasses); no cycles, at most
    MAX_PLAIN_NODES values in all."""
    stack = [(value, False)]
    on_path = set()
    budget = MAX_PLAIN_NODES
    while stack:
        item, leaving = stack.pop()
        if leaving:
            on_path.discard(id(item))
            continue
        budget -= 1
        if budget < 0:
            return f"more than {MAX_PLAIN_NODES} values"
        kind = type(item)
        if kind in PLAIN_ATOMS:
            continue
        if kind not in PLAIN_CONTAINERS:
            return f"an object of type {kind.__name__} (only builtin data types are compared)"
        if id(item) in on_path:
            return "a value that contains itself"
        on_path.add(id(item))
        stack.append((item, True))
        if kind is dict:
            for key, val in item.items():
                stack.append((key, False))
                stack.append((val, False))
        else:
            for element in item:
                stack.append((element, False))
    return None


def write_all(fd, data, deadline=None):
    view = memoryview(data)
    while view:
        if deadline is not None:
            wait_for(fd, select.POLLOUT, deadline)
        view = view[os.write(fd, view):]


def send(fd, message, deadline=None):
    data = marshal.dumps(message)
    write_all(fd, len(data).to_bytes(4, "little") + data, deadline)


def read_exact(fd, size, deadline=None):
    chunks, left = [], size
    while left:
        if deadline is not None:
            wait_for(fd, select.POLLIN, deadline)
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            raise CandidateGone("the candidate process ended")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def receive(fd, deadline=None):
    size = int.from_bytes(read_exact(fd, 4, deadline), "little")
    if size > MAX_MESSAGE_BYTES:
        raise CandidateGone(f"the candidate sent a message of {size} bytes")
    return marshal.loads(read_exact(fd, size, deadline))


def wait_for(fd, event, deadline):
    poller = select.poll()
    poller.register(fd, event)
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeUp()
        if poller.poll(left * 1000):
            return


def builtin_exception_name(exc):
    """Name of the nearest builtin exception class of ``exc`` (its own, or a base)."""
    for cls in type(exc).__mro__:
        if getattr(builtins, cls.__name__, None) is cls and issubclass(cls, BaseException):
            return cls.__name__
    return "Exception"


def short(text, limit=300):
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


class CandidateGone(BaseException):
    """The candidate process ended or broke the protocol: no further call can succeed."""


class CandidateExit(BaseException):
    """A candidate function raised SystemExit/KeyboardInterrupt: not catchable as Exception."""


class CandidateError(Exception):
    """A candidate function raised an exception of its own class."""


class NotPlainData(BaseException):
    """A candidate function returned something other than plain builtin data. (Not an
    Exception: a test that expects an exception must not take this for one.)"""


class TimeUp(BaseException):
    """The harness's deadline passed."""


class TestError(BaseException):
    """The tests themselves cannot be run here (the verifier's problem, not the model's)."""


# --------------------------------------------------------------------------------------------
# The candidate process
# --------------------------------------------------------------------------------------------
def candidate_process(req_r, resp_w):
    """Load the candidate program and answer call requests. Never returns."""
    code = 0
    try:
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)   # the job arrives on stdin later; never for the candidate
        os.dup2(2, 1)         # stdout is the harness's record channel; prints go to stderr
        low, high = sorted((req_r, resp_w))
        os.closerange(3, low)  # the sandbox's flag channel (fd 3), the harness's pipe ends, ...
        os.closerange(low + 1, high)
        os.closerange(high + 1, 1 << 16)
        _signal.signal(_signal.SIGINT, _signal.default_int_handler)
        load_and_serve(req_r, resp_w)
    except BaseException:
        code = 1
    os._exit(code)


def load_and_serve(req_r, resp_w):
    import ctypes
    ctypes.CDLL(None).prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)  # its own /proc/self, as usual
    module = type(sys)("solution")
    module.__file__ = os.path.abspath(SOLUTION_FILE)
    sys.modules["solution"] = module
    sys.argv[:] = [SOLUTION_FILE]
    try:
        with open(SOLUTION_FILE, "rb") as f:
            source = f.read()
        exec(compile(source, module.__file__, "exec", dont_inherit=True), module.__dict__)
    except BaseException as exc:  # SystemExit at import is a failure like any other
        send(resp_w, ("load_error", builtin_exception_name(exc), short(exc_text(exc))))
        return
    names = {}
    for name, value in list(module.__dict__.items()):
        if type(name) is not str or name.startswith("__"):
            continue
        if isinstance(value, type(sys)):
            names[name] = ("module", str(getattr(value, "__name__", "")))
        elif callable(value):
            names[name] = ("function", "")
    send(resp_w, ("loaded", names))
    while True:
        try:
            request = receive(req_r)
        except CandidateGone:
            return
        send(resp_w, answer(module, request))


def answer(module, request):
    _, name, args, kwargs = request
    try:
        result = module.__dict__[name](*args, **kwargs)
    except BaseException as exc:
        return ("raise", builtin_exception_name(exc), short(exc_text(exc)))
    problem = plain_error(result)
    if problem is None:
        try:
            marshal.dumps(result)
        except Exception as exc:  # e.g. nested too deeply
            problem = f"a value marshal cannot carry ({exc})"
    if problem is not None:
        return ("not_plain", problem)
    return ("ok", result)


def exc_text(exc):
    try:
        text = str(exc)
    except BaseException:
        text = ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# --------------------------------------------------------------------------------------------
# The harness process
# --------------------------------------------------------------------------------------------
class Candidate:
    """The harness's end of the pipes to the candidate process."""

    def __init__(self, pid, req_w, resp_r, deadline):
        self.pid, self.req_w, self.resp_r, self.deadline = pid, req_w, resp_r, deadline
        self.gone = None  # why no further call can succeed

    def receive(self):
        try:
            message = receive(self.resp_r, self.deadline)
        except CandidateGone as exc:
            self.gone = str(exc)
            raise
        except TimeUp:
            self.gone = "timeout"
            raise
        except Exception as exc:  # undecodable reply
            self.gone = f"the candidate sent a malformed reply ({type(exc).__name__})"
            raise CandidateGone(self.gone) from None
        if type(message) is not tuple or not message or type(message[0]) is not str:
            self.gone = "the candidate sent a malformed reply"
            raise CandidateGone(self.gone)
        return message

    def call(self, name, args, kwargs):
        if self.gone:
            raise CandidateGone(self.gone)
        request = ("call", name, args, kwargs)
        if plain_error(request) is not None:
            raise TestError(f"the tests pass {plain_error(request)} to {name}(); "
                            "only plain data can cross to the candidate process")
        try:
            send(self.req_w, request, self.deadline)
        except TimeUp:
            self.gone = "timeout"
            raise
        except OSError:
            self.gone = "the candidate process ended"
            raise CandidateGone(self.gone) from None
        reply = self.receive()
        tag = reply[0]
        if tag == "ok" and len(reply) == 2:
            problem = plain_error(reply[1])
            if problem is None:
                return reply[1]
            raise NotPlainData(f"{name}() returned {problem}")
        if tag == "not_plain" and len(reply) == 2:
            raise NotPlainData(f"{name}() returned {short(reply[1])}")
        if tag == "raise" and len(reply) == 3 and type(reply[1]) is str and type(reply[2]) is str:
            cls, text = getattr(builtins, reply[1], None), f"{name}() raised {reply[2]}"
            if isinstance(cls, type) and issubclass(cls, Exception) and cls.__module__ == "builtins":
                try:  # the same builtin class, so that tests expecting e.g. ValueError see one
                    error = cls(text)
                except Exception:  # a class whose constructor wants more (UnicodeDecodeError)
                    error = CandidateError(text)
                raise error
            if isinstance(cls, type) and issubclass(cls, BaseException):
                raise CandidateExit(text)
            raise CandidateError(text)
        self.gone = "the candidate sent a malformed reply"
        raise CandidateGone(self.gone)

    def stop(self):
        try:
            os.kill(self.pid, 9)
        except OSError:
            pass


class Remote:
    """Stands for a function of the candidate program in the tests' namespace."""

    def __init__(self, candidate, name):
        self._candidate, self.__name__ = candidate, name

    def __call__(self, *args, **kwargs):
        return self._candidate.call(self.__name__, args, kwargs)

    def __repr__(self):
        return f"<candidate function {self.__name__}>"


def add_candidate_names(namespace, candidate, names, job):
    """Complete the tests' globals: the candidate's functions as Remote stand-ins and the common
    standard-library modules it imported (the harness's own copies), where the prompt's code
    bound nothing of that name and no builtin the tests rely on (``abs``) would be shadowed;
    then the entry point, also as ``candidate_name``."""
    for name, (kind, module_name) in names.items():
        if not name.isidentifier() or name.startswith("__") or hasattr(builtins, name) or name in namespace:
            continue
        if kind == "function":
            namespace[name] = Remote(candidate, name)
        elif kind == "module" and (module_name in sys.modules or module_name in SHARED_MODULES):
            try:
                __import__(module_name)
                namespace[name] = sys.modules[module_name]
            except Exception:
                pass
    namespace[job["entry_point"]] = namespace[job["candidate_name"]] = Remote(candidate, job["entry_point"])


def valid_names(message):
    if len(message) != 2 or type(message[1]) is not dict or plain_error(message[1]) is not None:
        return None
    names = message[1]
    for name, entry in names.items():
        if (type(name) is not str or type(entry) is not tuple or len(entry) != 2
                or type(entry[0]) is not str or type(entry[1]) is not str):
            return None
    return names


def run_tests(job, candidate):
    """Run the prompt's code, load the candidate, run every unit; the record (without the nonce)."""
    record = {"passed": 0, "total": sum(1 for unit in job["units"] if unit[1]), "failure": "",
              "timeout": False, "load_error": "", "test_error": "", "harness_error": ""}
    namespace = {"__name__": "__test__", "__builtins__": builtins}
    try:  # the prompt's helpers and imports, first: what the tests call them is not the model's
        exec(compile(job["prelude"], "<prompt>", "exec", dont_inherit=True), namespace)
    except Exception as exc:
        record["test_error"] = f"the prompt's code cannot run in the sandbox: {short(exc_text(exc))}"
        return record
    try:
        message = candidate.receive()
    except TimeUp:
        record.update(timeout=True, load_error="timeout while loading the program")
        return record
    except CandidateGone as exc:
        record["load_error"] = f"the program ended while loading ({exc})"
        return record
    names = valid_names(message) if message[0] == "loaded" else None
    if names is None:
        if message[0] == "load_error" and len(message) == 3:
            record["load_error"] = short(message[2])
        else:
            record["load_error"] = "the candidate sent a malformed reply"
        return record
    entry = job["entry_point"]
    if names.get(entry, ("",))[0] != "function":
        record["load_error"] = f"the program does not define a function {entry!r}"
        return record
    add_candidate_names(namespace, candidate, names, job)
    for source, counted, is_import in job["units"]:
        try:
            exec(compile(source, "<tests>", "exec", dont_inherit=True), namespace)
        except TimeUp:
            record.update(timeout=True, failure=record["failure"] or f"timeout during: {short(source, 120)}")
            return record
        except TestError as exc:
            record["test_error"] = str(exc)
            return record
        except BaseException as exc:
            if is_import and isinstance(exc, ImportError):
                record["test_error"] = f"the tests' import failed in the sandbox: {short(exc_text(exc))}"
                return record
            if not record["failure"]:
                record["failure"] = f"{short(source, 120)} -> {short(exc_text(exc))}"
            if not counted or not job["partial"] or candidate.gone:
                return record  # setup failed, all-or-nothing, or no call can succeed any more
            continue
        if counted:
            record["passed"] += 1
    return record


def read_job():
    chunks = []
    while True:
        chunk = os.read(0, 1 << 20)
        if not chunk:
            break
        chunks.append(chunk)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    return json.loads(b"".join(chunks))


def start_candidate():
    """Fork the candidate process; (pid, request write end, reply read end)."""
    # Nothing the candidate can write may be imported here: drop the working dir from the path.
    writable = (os.getcwd(), "/tmp", "/dev/shm")
    sys.path[:] = [p for p in sys.path if p and not any(p == w or p.startswith(w + "/") for w in writable)]
    import ctypes
    if ctypes.CDLL(None).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:  # our memory and /proc entries: closed
        raise OSError("prctl(PR_SET_DUMPABLE, 0) failed")
    req_r, req_w = os.pipe()
    resp_r, resp_w = os.pipe()
    pid = os.fork()  # before the job is read: the candidate's memory never holds the nonce or the tests
    if pid == 0:
        candidate_process(req_r, resp_w)
    os.close(req_r)
    os.close(resp_w)
    os.set_blocking(req_w, False)
    return pid, req_w, resp_r


def harness_main():
    start = time.monotonic()
    # As pid 1 of its pid namespace, the harness gets no signal from the candidate for which it
    # has no handler; the sandbox gave it one for SIGINT: drop it.
    _signal.signal(_signal.SIGINT, _signal.SIG_IGN)
    try:
        candidate, setup_error = Candidate(*start_candidate(), deadline=0.0), ""
    except BaseException as exc:  # no candidate process exists: reading the job is safe
        candidate, setup_error = None, f"could not start the candidate process: {short(exc_text(exc))}"
    job = read_job()
    if candidate is None:
        record = {"harness_error": setup_error}
    else:
        candidate.deadline = start + float(job["budget_s"])
        try:
            record = run_tests(job, candidate)
        except BaseException as exc:  # a bug here, not the program's doing
            record = {"harness_error": short(exc_text(exc))}
        candidate.stop()
    record["nonce"] = job["nonce"]
    write_all(1, (json.dumps(record) + "\n").encode())
    os._exit(0)


if __name__ == "__main__":
    harness_main()
