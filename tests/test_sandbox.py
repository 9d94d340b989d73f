"""Behaviour of the sandbox's API and command line (real runs, no mocks)."""

from __future__ import annotations

import json
import os
import signal
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import sandbox  # noqa: E402
from sandbox import ExecResult, Limits, SandboxPool, Status  # noqa: E402
from sandbox import _protocol  # noqa: E402
from sandbox.isolation import probe_bwrap  # noqa: E402

_ok, _why = probe_bwrap()
needs_bwrap = pytest.mark.skipif(not _ok and not os.environ.get("CI"),
                                 reason=f"bubblewrap unavailable (in CI this fails instead): {_why}")


@pytest.fixture(scope="module")
def pool():
    with SandboxPool(2, limits=Limits(timeout_s=5)) as p:
        yield p


def cli(*args, stdin=None, env=None, timeout=60):
    return subprocess.run([sys.executable, "-m", "sandbox", *args], cwd=ROOT, capture_output=True, text=True,
                          input=stdin, env=env, timeout=timeout)


# --------------------------------------------------------------------------------------------
# Limits and ExecResult
# --------------------------------------------------------------------------------------------
def test_limits_defaults_and_validation():
    lim = Limits()
    assert lim.timeout_s == 10 and lim.memory_mb == 1024 and lim.max_output_bytes == 1 << 20
    assert lim.effective_cpu_s == 11
    assert Limits(cpu_s=2.5).effective_cpu_s == 3
    for kwargs, field in [({"timeout_s": -1}, "timeout_s"), ({"timeout_s": "10"}, "timeout_s"),
                          ({"memory_mb": 1.5}, "memory_mb"), ({"memory_mb": 4}, "memory_mb"),
                          ({"max_output_bytes": 0}, "max_output_bytes"), ({"max_processes": True}, "max_processes"),
                          ({"max_open_files": 3}, "max_open_files"), ({"cpu_s": float("nan")}, "cpu_s")]:
        with pytest.raises(ValueError, match=f"Limits.{field}"):
            Limits(**kwargs)
    with pytest.raises(ValueError, match="unknown field"):
        Limits.from_dict({"timeout": 3})
    assert Limits.from_dict({"timeout_s": 3}).timeout_s == 3
    assert lim.replace(memory_mb=64).memory_mb == 64
    with pytest.raises(Exception):
        lim.timeout_s = 1  # frozen


def test_exec_result_json_roundtrip():
    r = ExecResult(Status.RUNTIME_ERROR, exit_code=None, signal=signal.SIGSEGV, stdout="ä", duration=0.5)
    d = json.loads(r.to_json())
    assert d["status"] == "runtime_error" and d["signal_name"] == "SIGSEGV" and d["stdout"] == "ä"
    assert ExecResult.from_dict(d) == r
    assert not r.ok and ExecResult(Status.OK).ok


def test_protocol_records_roundtrip_and_the_zygote_shares_them():
    job = _protocol.JobHeader(job_id=7, timeout_s=2.5, memory_mb=64, cpu_s=3, max_file_bytes=1 << 20, disk_mb=8,
                              max_open_files=32, max_processes=5, payload_size=123, has_files=True)
    assert _protocol.JobHeader.decode(job.encode()) == job
    assert _protocol.JobHeader.decode(job.encode()[:-1]) is None
    for done in [_protocol.Done(7, 0x0900, _protocol.KILLED_MEMORY, 0.25, 4096, True, None),
                 _protocol.Done(8, None, _protocol.KILLED_NONE, 0.0, 0, False, "cannot mount ✓")]:
        assert _protocol.Done.decode(done.encode()) == done
    assert _protocol.Done.decode(_protocol.encode_kill(7)) is None
    assert _protocol.decode_kill(_protocol.encode_kill(7)) == 7
    assert _protocol.decode_ready(_protocol.encode_ready({"pid": 1, "mode": "ns"})) == {"pid": "1", "mode": "ns"}
    files = [("main.py", b"print(1)"), ("d/a.txt", b"\x00\xff")]
    assert _protocol.read_files_payload(_protocol.files_payload(files[0][1], files[1:])) == files
    # The zygote runs the protocol's own source (it cannot import the package): no second copy to drift.
    from sandbox.isolation import zygote_source
    zygote = (ROOT / "sandbox" / "_zygote.py").read_text()
    assert zygote_source().startswith((ROOT / "sandbox" / "_protocol.py").read_text())
    for name in ("OP_JOB =", "JOB_FMT", "DONE_FMT", "KILLED_NONE =", "struct.pack(DONE", "struct.unpack_from(JOB"):
        assert name not in zygote, f"the zygote defines {name!r} itself"


# --------------------------------------------------------------------------------------------
# Statuses
# --------------------------------------------------------------------------------------------
@needs_bwrap
def test_ok_stdout_stderr(pool):
    r = pool.run("import sys\nprint('out')\nprint('err', file=sys.stderr)")
    assert r.status is Status.OK and r.ok
    assert (r.stdout, r.stderr, r.exit_code, r.signal) == ("out\n", "err\n", 0, None)
    assert r.isolation == "bwrap" and r.duration > 0 and r.cpu_time is not None


@needs_bwrap
@pytest.mark.parametrize("program, code", [("raise SystemExit(3)", 3), ("import sys; sys.exit(0)", 0),
                                           ("import os; os._exit(7)", 7), ("import sys; sys.exit('bye')", 1),
                                           ("1/0", 1), ("def f(:\n  pass", 1), ("exit()", 0)])
def test_exit_codes(pool, program, code):
    r = pool.run(program)
    assert r.exit_code == code, r
    assert r.status is (Status.OK if code == 0 else Status.RUNTIME_ERROR)


@needs_bwrap
def test_tracebacks_look_like_the_interpreters(pool):
    r = pool.run("def f():\n    raise ValueError('boom')\nf()\n")
    assert r.stderr.startswith("Traceback (most recent call last):\n  File \"/sandbox/main.py\", line 3")
    assert r.stderr.endswith("ValueError: boom\n")
    assert "run_in_process" not in r.stderr and "<string>" not in r.stderr
    r = pool.run("x = (\n")
    assert "SyntaxError" in r.stderr and r.status is Status.RUNTIME_ERROR


@needs_bwrap
def test_killed_by_signal(pool):
    r = pool.run("import ctypes; ctypes.string_at(0)")
    assert r.status is Status.RUNTIME_ERROR and r.signal == signal.SIGSEGV and r.exit_code is None
    assert r.signal_name == "SIGSEGV"


@needs_bwrap
def test_timeout_is_enforced_at_the_deadline(pool):
    t0 = time.monotonic()
    r = pool.run("print('started', flush=True)\nwhile True: pass", limits=Limits(timeout_s=0.5))
    assert r.status is Status.TIMEOUT
    assert 0.5 <= time.monotonic() - t0 < 1.5
    assert r.stdout == "started\n"  # output written before the kill is kept


@needs_bwrap
def test_cpu_limit(pool):
    r = pool.run("while True: pass", limits=Limits(timeout_s=30, cpu_s=1))
    assert r.status is Status.TIMEOUT and "CPU" in r.error, r


@needs_bwrap
def test_memory_limit(pool):
    r = pool.run("x = bytearray(200 * 1024 * 1024)", limits=Limits(memory_mb=100))
    assert r.status is Status.MEMORY_LIMIT and "MemoryError" in r.stderr
    r = pool.run("try:\n    x = bytearray(200 * 1024 * 1024)\nexcept MemoryError:\n    print('caught')",
                 limits=Limits(memory_mb=100))
    assert r.status is Status.OK and r.stdout == "caught\n"
    # Several processes, each under the limit, together over it: the supervisor notices.
    r = pool.run("import os, time\nfor _ in range(4):\n    if os.fork() == 0:\n"
                 "        x = bytearray(60 * 1024 * 1024)\n        time.sleep(30)\ntime.sleep(30)",
                 limits=Limits(memory_mb=128, timeout_s=20))
    assert r.status is Status.MEMORY_LIMIT, r


@needs_bwrap
def test_output_limit(pool):
    r = pool.run("print('x' * 5000)", limits=Limits(max_output_bytes=1000))
    assert r.status is Status.OUTPUT_LIMIT and r.stdout_truncated and not r.stderr_truncated
    assert r.stdout == "x" * 1000
    r = pool.run("import sys\nwhile True: sys.stderr.write('e' * 100)", limits=Limits(max_output_bytes=10000))
    assert r.status is Status.OUTPUT_LIMIT and r.stderr_truncated and len(r.stderr) == 10000
    r = pool.run("print('y' * 999)", limits=Limits(max_output_bytes=1000))
    assert r.status is Status.OK and len(r.stdout) == 1000


@needs_bwrap
def test_file_size_and_open_files_limits(pool):
    r = pool.run("with open('f', 'wb') as f:\n    f.write(b'0' * 5000)", limits=Limits(max_file_bytes=4096))
    assert r.status is Status.RUNTIME_ERROR and "File too large" in r.stderr
    # A file the program does not close is flushed at exit, as at the interpreter's shutdown.
    r = pool.run("class C:\n    def __del__(self):\n        print('finalized')\nc = C()\n"
                 "f = open('f', 'w'); f.write('x' * 100); print('done')")
    assert r.stdout == "done\nfinalized\n"
    r = pool.run("fs = [open('/dev/null') for _ in range(100)]", limits=Limits(max_open_files=50))
    assert r.status is Status.RUNTIME_ERROR and "Too many open files" in r.stderr


@needs_bwrap
def test_process_limit(pool):
    r = pool.run("import os\nn = 0\ntry:\n    while True:\n        if os.fork() == 0:\n            import time; time.sleep(5)\n"
                 "        n += 1\nexcept OSError:\n    print(n)", limits=Limits(max_processes=10))
    assert r.status is Status.OK and int(r.stdout) <= 10


def test_sandbox_error_when_worker_dies_is_not_a_program_failure():
    if not _ok and not os.environ.get("CI"):
        pytest.skip(_why)
    with SandboxPool(1) as p:
        fut = p.submit("import time; time.sleep(30)")
        time.sleep(0.3)
        p._workers[0].proc.kill()
        r = fut.result(timeout=5)
        assert r.status is Status.SANDBOX_ERROR and r.error
        assert p.run("print(1)").stdout == "1\n"


# --------------------------------------------------------------------------------------------
# Inputs: stdin, files
# --------------------------------------------------------------------------------------------
@needs_bwrap
def test_stdin_str_bytes_and_large(pool):
    assert pool.run("print(input()[::-1])", stdin="abc\n").stdout == "cba\n"
    assert pool.run("import sys; print(sys.stdin.buffer.read().hex())", stdin=b"\x00\xff").stdout == "00ff\n"
    big = "7\n" * 500_000
    r = pool.run("import sys; print(sum(map(int, sys.stdin)))", stdin=big)
    assert r.stdout == f"{7 * 500_000}\n"
    assert pool.run("import sys; print(repr(sys.stdin.read()))").stdout == "''\n"


@needs_bwrap
def test_files(pool):
    r = pool.run("import os\nprint(sorted(os.listdir('.')), open('data/in.txt').read(), open('b.bin','rb').read())",
                 files={"data/in.txt": "hello", "b.bin": b"\x01\x02"})
    assert r.stdout == "['b.bin', 'data', 'main.py'] hello b'\\x01\\x02'\n"
    for bad in ["../x", "/etc/x", "a/../../x", "main.py", "", "a//b"]:
        with pytest.raises(ValueError):
            pool.run("pass", files={bad: "x"})


@needs_bwrap
def test_unicode_and_invalid_output(pool):
    r = pool.run("print('héllo ✓'); import sys; sys.stdout.flush(); sys.stdout.buffer.write(b'\\xff\\n')")
    assert r.stdout == "héllo ✓\n\ufffd\n"


@needs_bwrap
def test_program_sees_a_plain_environment(pool):
    r = pool.run("import os, sys\nprint(os.getcwd(), sys.argv, __name__, __file__, dict(os.environ), os.getuid())")
    assert r.stdout == "/sandbox ['main.py'] __main__ /sandbox/main.py {} 65534\n"
    r = pool.run("import subprocess, sys\nprint(subprocess.run([sys.executable, '-c', 'print(5)'], "
                 "capture_output=True, text=True).stdout.strip())\nimport tempfile\n"
                 "with tempfile.NamedTemporaryFile() as f: print(f.name.startswith('/tmp/'))")
    assert r.status is Status.OK and r.stdout == "5\nTrue\n", r
    r = pool.run("import threading\nout = []\nt = threading.Thread(target=lambda: out.append(1))\nt.start(); t.join()\n"
                 "import atexit\natexit.register(print, 'bye')\nprint(out)")
    assert r.stdout == "[1]\nbye\n"


# --------------------------------------------------------------------------------------------
# Isolation between programs
# --------------------------------------------------------------------------------------------
@needs_bwrap
def test_no_state_survives_between_programs():
    with SandboxPool(1) as one:
        r = one.run("import os, math, sys\nopen('f', 'w').write('1'); open('/tmp/g', 'w').write('1')\n"
                    "open('/dev/shm/h', 'w').write('1')\nos.environ['LEAK'] = '1'\nmath.pi = 3\n"
                    "sys.modules['leak'] = math\nimport builtins; builtins.leaked = True\nos.chmod('.', 0o555)")
        assert r.status is Status.OK, r
        r = one.run("import os, math, sys, builtins\nprint(sorted(os.listdir('.')), os.listdir('/tmp'), "
                    "os.listdir('/dev/shm'), 'LEAK' in os.environ, math.pi, 'leak' in sys.modules, "
                    "hasattr(builtins, 'leaked'), os.access('.', os.W_OK))")
        assert r.stdout == "['main.py'] [] [] False 3.141592653589793 False False True\n", r


@needs_bwrap
def test_batch_results_are_in_input_order(pool):
    items = [{"program": f"import time, random\ntime.sleep(random.random() / 20)\nprint({i})"} for i in range(30)]
    items.append("print('plain string')")
    items.append({"program": "print(input())", "stdin": "in", "limits": {"timeout_s": 1}})
    results = pool.run_batch(items)
    assert [r.stdout for r in results[:30]] == [f"{i}\n" for i in range(30)]
    assert results[30].stdout == "plain string\n" and results[31].stdout == "in\n"
    assert [r.stdout for r in pool.map([f"print({i})" for i in range(5)])] == [f"{i}\n" for i in range(5)]
    with pytest.raises(ValueError, match="unknown keys"):
        pool.run_batch([{"program": "pass", "stdn": ""}])


@needs_bwrap
def test_threads_can_share_a_pool(pool):
    out = {}

    def work(i):
        out[i] = pool.run(f"print({i} * {i})").stdout

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out == {i: f"{i * i}\n" for i in range(8)}


# --------------------------------------------------------------------------------------------
# Module-level API and isolation modes
# --------------------------------------------------------------------------------------------
@needs_bwrap
def test_module_level_run_and_batch():
    r = sandbox.run("print(input())", stdin="x", limits=Limits(timeout_s=3))
    assert r.status is Status.OK and r.stdout == "x\n"
    r = sandbox.run("print(2)", isolation="bwrap-per-run")
    assert r.stdout == "2\n" and r.isolation == "bwrap-per-run"
    rs = sandbox.run_batch(["print(1)", "print(2)"], workers=2)
    assert [x.stdout for x in rs] == ["1\n", "2\n"]


@needs_bwrap
def test_fresh_interpreter_mode():
    with SandboxPool(1, fresh_interpreter=True) as p:
        r = p.run("import sys; print(sys.argv, input())", stdin="z")
        assert r.status is Status.OK and r.stdout == "['main.py'] z\n", r
        assert p.run("while True: pass", limits=Limits(timeout_s=0.5)).status is Status.TIMEOUT


def test_unsafe_mode_only_when_asked(tmp_path):
    env = dict(os.environ, RLVR_SANDBOX_BWRAP=str(tmp_path / "no-such-bwrap"))
    code = ("import sandbox, warnings\n"
            "try:\n    sandbox.run('print(1)')\nexcept sandbox.SandboxUnavailable as e:\n    print('REFUSED', e)\n"
            "with warnings.catch_warnings(record=True) as w:\n    warnings.simplefilter('always')\n"
            "    r = sandbox.run('print(2)', allow_unsafe=True)\n"
            "    print(r.status.value, r.stdout.strip(), r.isolation, any('WITHOUT isolation' in str(x.message) for x in w))\n"
            "r = sandbox.run('import os; print(sorted(os.environ))', isolation='none')\nprint(r.stdout.strip())")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    lines = out.stdout.splitlines()
    assert lines[0].startswith("REFUSED") and "apt-get install bubblewrap" in lines[0]
    assert "unprivileged_userns_clone" in lines[0] and "allow_unsafe" in lines[0]
    assert lines[1] == "ok 2 none True"
    assert lines[2] == "[]"


def test_unknown_isolation_is_rejected():
    with pytest.raises(ValueError, match="isolation must be one of"):
        SandboxPool(1, isolation="docker")
    with pytest.raises(ValueError):
        SandboxPool(0)
    with pytest.raises(TypeError):
        sandbox.make_job(123)


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------
@needs_bwrap
def test_cli_run(tmp_path):
    prog = tmp_path / "p.py"
    prog.write_text("import sys\nprint(sys.stdin.read().upper())\n")
    inp = tmp_path / "in.txt"
    inp.write_text("hello")
    p = cli("run", str(prog), "--stdin", str(inp), "--json")
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    assert r["status"] == "ok" and r["stdout"] == "HELLO\n" and r["exit_code"] == 0
    assert set(r) >= {"status", "exit_code", "signal", "stdout", "stderr", "duration"}
    prog.write_text("import time\ntime.sleep(60)")
    t0 = time.monotonic()
    p = cli("run", str(prog), "--timeout", "1", "--json")
    assert time.monotonic() - t0 < 10
    assert p.returncode == 1 and json.loads(p.stdout)["status"] == "timeout"
    prog.write_text("x = bytearray(300 * 1024 * 1024)")
    p = cli("run", str(prog), "--memory-mb", "100", "--json")
    assert json.loads(p.stdout)["status"] == "memory_limit"
    prog.write_text("print('plain'); raise SystemExit(4)")
    p = cli("run", str(prog))
    assert p.returncode == 1 and p.stdout == "plain\n" and "status=runtime_error exit_code=4" in p.stderr
    assert cli("run", str(tmp_path / "missing.py")).returncode == 2


@needs_bwrap
def test_cli_batch(tmp_path):
    rows = [{"program": f"print({i})"} for i in range(5)]
    rows.insert(2, {"program": "print(input()[::-1])", "stdin": "abc"})
    rows.append({"program": "1/0"})
    text = "\n".join(json.dumps(r) for r in rows) + "\nnot json\n"
    f = tmp_path / "in.jsonl"
    f.write_text(text)
    p = cli("batch", str(f), "--workers", "2", "--timeout", "5")
    # A malformed row (line 8) fails the command, is named on stderr, and keeps its place in the output.
    assert p.returncode == 2, p.stderr
    assert f"{f}: line 8: invalid row" in p.stderr
    assert p.stderr.splitlines()[-1] == "sandbox batch: 8 rows: 6 ok, 1 runtime_error, 1 invalid (line 8)"
    out = [json.loads(line) for line in p.stdout.splitlines()]
    assert len(out) == len(rows) + 1
    assert [o["stdout"] for o in out[:7]] == ["0\n", "1\n", "cba\n", "2\n", "3\n", "4\n", ""]
    assert out[6]["status"] == "runtime_error"
    assert out[7]["status"] == "sandbox_error" and "invalid input row" in out[7]["error"]
    p = cli("batch", "-", stdin='{"program": "print(9)"}\n[1, 2]\n')
    assert p.returncode == 2 and json.loads(p.stdout.splitlines()[0])["stdout"] == "9\n"
    assert "-: line 2: invalid row: a row must be a JSON object" in p.stderr
    p = cli("batch", "-", stdin='{"program": "print(9)"}\n{"program": "raise SystemExit(1)"}\n')
    assert p.returncode == 0 and p.stderr.splitlines()[-1] == "sandbox batch: 2 rows: 1 ok, 1 runtime_error"


@needs_bwrap
def test_cli_output_lines_survive_any_program_output(tmp_path):
    """--json rows stay one line under every line-splitting convention; in text mode the status
    line starts a line of its own whatever the program's last bytes were."""
    separators = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
    prog = tmp_path / "p.py"
    prog.write_text("import sys\n"
                    f"sys.stdout.write({separators!r} + 'end')\n"
                    f"sys.stderr.write('err' + {separators!r} + 'partial \\x1b[')\n")
    p = cli("run", str(prog), "--json")
    assert p.stdout.count("\n") == 1 and len(p.stdout.splitlines()) == 1 and p.stdout.isascii()
    assert json.loads(p.stdout)["stdout"] == separators + "end"
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"program": prog.read_text()}) + "\n")
    p = cli("batch", str(rows))
    assert p.returncode == 0 and len(p.stdout.splitlines()) == 1 and p.stdout.isascii()
    p = cli("run", str(prog))
    assert p.stderr.endswith("\x1b[\n" + p.stderr.splitlines()[-1] + "\n")
    assert p.stderr.splitlines()[-1].startswith("[sandbox] status=ok exit_code=0")
    # stdout and stderr to one file: the status line also comes after stdout's unfinished line.
    prog.write_text("print('no newline', end='')")
    with open(tmp_path / "both.txt", "w") as both:
        subprocess.run([sys.executable, "-m", "sandbox", "run", str(prog)], cwd=ROOT, stdout=both,
                       stderr=subprocess.STDOUT, timeout=60)
    text = (tmp_path / "both.txt").read_text()
    assert text.startswith("no newline\n[sandbox] status=ok"), text
    # A multi-line error message stays on the status line.
    from sandbox.cli import status_line
    assert "\n" not in status_line(ExecResult(Status.SANDBOX_ERROR, error="worker died:\nTraceback\n  x"))


@needs_bwrap
def test_cli_check():
    p = cli("check")
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.startswith("isolation: bwrap  (OK)")
    assert "seccomp=2" in p.stdout and "net=['lo']" in p.stdout
    p = cli("check", "--json")
    report = json.loads(p.stdout)
    assert report["ok"] and report["details"]["probe"]["env"] == {}


def test_cli_check_without_bwrap_says_how_to_install(tmp_path):
    env = dict(os.environ, RLVR_SANDBOX_BWRAP=str(tmp_path / "nope"))
    p = cli("check", env=env)
    assert p.returncode == 1 and "apt-get install bubblewrap" in p.stdout
    p = cli("run", "/dev/null", env=env)
    assert p.returncode == 2 and "apt-get install bubblewrap" in p.stderr
    p = cli("check", "--allow-unsafe", env=env)
    assert p.returncode == 1 and "UNSAFE" in p.stdout


def test_import_paths_and_preload_functions(tmp_path_factory):
    """Trusted code outside the standard library is importable from import_paths, read-only; a
    'module:function' preload runs once in the worker; a preload that fails is an error."""
    root = Path(__file__).resolve().parent / "sandbox_support"
    assert (root / "warm_counter.py").exists()
    with SandboxPool(1, preload=["warm_counter:warm"], import_paths=[str(root)]) as pool:
        r = pool.run("import os, warm_counter\nprint(warm_counter.WARMED)\n"
                     "print(bool(os.statvfs(warm_counter.__file__).f_flag & os.ST_RDONLY))\n")
        assert r.stdout == "1\nTrue\n"  # warmed once in the worker, inherited; mounted read-only
    with pytest.raises(sandbox.SandboxUnavailable, match="could not import its preload modules: no_such_module_xyz"):
        SandboxPool(1, preload=["no_such_module_xyz"])
    # a directory under /tmp (which the sandbox replaces with its own) is mounted at /import/N
    elsewhere = tmp_path_factory.mktemp("imports")
    (elsewhere / "tmp_module.py").write_text("VALUE = 42\n")
    if os.geteuid() == 0:
        elsewhere.chmod(0o700)
        with pytest.raises(ValueError, match="not readable by other users"):
            SandboxPool(1, import_paths=[str(elsewhere)])
    elsewhere.chmod(0o755)
    # and one reachable by everyone directly under /tmp, as a checkout in /tmp is (bound by bwrap
    # itself, after the root launcher has staged the unreadable sources)
    direct = Path(tempfile.mkdtemp(dir="/tmp"))
    try:
        direct.chmod(0o755)
        (direct / "direct_module.py").write_text("VALUE = 7\n")
        with SandboxPool(1, import_paths=[str(elsewhere), str(root)]) as pool:
            r = pool.run("import tmp_module, warm_counter\nprint(tmp_module.VALUE, tmp_module.__file__)\n")
            assert r.stdout == "42 /import/0/tmp_module.py\n", r.stderr
        with SandboxPool(1, import_paths=[str(direct)]) as pool:
            r = pool.run("import direct_module\nprint(direct_module.VALUE)\n")
            assert r.stdout == "7\n", r.stderr
    finally:
        shutil.rmtree(direct)
    with pytest.raises(ValueError, match="whole host"):
        SandboxPool(1, import_paths=["/"])
