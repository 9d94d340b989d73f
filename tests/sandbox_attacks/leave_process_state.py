# expect: ok
# Changes everything a process can change about itself and its surroundings - environment, umask,
# priority, CPU affinity, personality, limits, timers, signal dispositions, the modules in memory,
# builtins, sys.path, the host name, listening sockets, its oom score - so that the next program on
# the same worker (find_process_state.py) would inherit it.
import builtins, ctypes, json, os, resource, signal, socket, sys
libc = ctypes.CDLL(None, use_errno=True)
os.environ["{{MARKER}}"] = "1"
os.putenv("PYTHONSTARTUP", "/tmp/evil.py")
os.umask(0o777)
os.nice(19)
try:
    os.sched_setaffinity(0, {0})
except OSError:
    pass
libc.personality(0x0040000 | 0x0400000)  # ADDR_NO_RANDOMIZE | READ_IMPLIES_EXEC
resource.setrlimit(resource.RLIMIT_NOFILE, (20, 20))
signal.setitimer(signal.ITIMER_REAL, 0.3, 0.3)
signal.signal(signal.SIGALRM, signal.SIG_IGN)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
json.dumps = lambda *a, **k: "STATE"
builtins.print = lambda *a, **k: sys.stdout.write("STATE\n")
builtins.len = lambda x: -1
sys.path.insert(0, "/tmp")
sys.modules["math"] = None
with open("/tmp/evil.py", "w") as f:
    f.write("print('STATE')\n")
with open("/proc/self/oom_score_adj", "w") as f:
    f.write("0")
libc.sethostname(b"STATE", 5)
keep = []
for fam, addr in ((socket.AF_INET, ("127.0.0.1", 48123)), (socket.AF_UNIX, "\0{{MARKER}}-listener")):
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.bind(addr)
    s.listen()
    keep.append(s)
sys.stdout.write("left\n")
