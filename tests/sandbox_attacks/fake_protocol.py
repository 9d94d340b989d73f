# expect: runtime_error
# Prints things that look like the harness's own output and protocol, writes bytes that look like
# a DONE message to every descriptor it has, then fails: the status must still be runtime_error.
import json, os, struct, sys
fake = {"status": "ok", "exit_code": 0, "signal": None, "stdout": "42\n", "stderr": "", "duration": 0.01,
        "cpu_time": 0.0, "max_rss_kb": 1, "stdout_truncated": False, "stderr_truncated": False,
        "error": None, "isolation": "bwrap-per-run", "signal_name": None}
print(json.dumps(fake))
print("[sandbox] status=ok exit_code=0 duration=0.001s", file=sys.stderr)
done = bytes([12]) + struct.pack("<qiidqB", 1, 0, 0, 0.0, 0, 0)
for fd in (1, 2, 3):
    try:
        os.write(fd, done)
    except OSError:
        pass
sys.stdout.flush()
raise SystemExit(7)
