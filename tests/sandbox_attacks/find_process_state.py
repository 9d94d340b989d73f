# expect: ok
# Run right after leave_process_state.py on the same worker: it must start as pristine as ever.
import builtins, ctypes, json, os, resource, signal, socket, sys
libc = ctypes.CDLL(None, use_errno=True)
found = []
if os.environ:
    found.append(("environ", dict(os.environ)))
um = os.umask(0o022)
if um != 0o022:
    found.append(("umask", oct(um)))
if os.getpriority(os.PRIO_PROCESS, 0) != 0:
    found.append(("nice", os.getpriority(os.PRIO_PROCESS, 0)))
caller_cpus = {int(c) for c in "{{CALLER_CPUS}}".split(",")}  # what every worker starts with
if os.sched_getaffinity(0) != caller_cpus:
    found.append(("affinity", os.sched_getaffinity(0), caller_cpus))
if libc.personality(0xFFFFFFFF) != 0:
    found.append(("personality", libc.personality(0xFFFFFFFF)))
if resource.getrlimit(resource.RLIMIT_NOFILE)[0] == 20:
    found.append("rlimit")
if signal.getitimer(signal.ITIMER_REAL) != (0.0, 0.0):
    found.append("itimer")
if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
    found.append("sigterm disposition")
if json.dumps([1]) != "[1]" or builtins.len("ab") != 2 or builtins.print.__module__ != "builtins":
    found.append("modules patched")
if "/tmp" in sys.path:
    found.append("sys.path")
import math
if math is None or not hasattr(math, "gcd"):
    found.append("sys.modules")
if os.path.exists("/tmp/evil.py"):
    found.append("/tmp/evil.py")
if open("/proc/self/oom_score_adj").read().strip() != "1000":
    found.append("oom_score_adj")
if os.uname().nodename != "sandbox":
    found.append(("hostname", os.uname().nodename))
for fam, addr in ((socket.AF_INET, ("127.0.0.1", 48123)), (socket.AF_UNIX, "\0{{MARKER}}-listener")):
    s = socket.socket(fam, socket.SOCK_STREAM)
    try:
        s.connect(addr)
        found.append(("listener", addr))
    except OSError:
        pass
print("STATE" if found else "clean", found)
