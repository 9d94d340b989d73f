# expect: ok
# Tries to take over any other process it can see: ptrace, /proc/<pid>/mem, pidfd signals.
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
hits = []
me = int(os.readlink("/proc/self"))  # our pid as /proc (the worker's pid namespace) sees it
for name in os.listdir("/proc"):
    if not name.isdigit() or int(name) == me:
        continue
    pid = int(name)
    if libc.ptrace(16, pid, 0, 0) == 0:  # PTRACE_ATTACH
        hits.append(("ptrace", pid))
    for f in ("mem", "environ", "fd/0", "maps"):
        try:
            with open(f"/proc/{pid}/{f}", "rb") as fh:
                fh.read(1)
            hits.append((f, pid))
        except OSError:
            pass
    try:
        fd = os.open(f"/proc/{pid}", os.O_RDONLY)
        if libc.syscall(424, fd, 9, None, 0) == 0:  # pidfd_send_signal(SIGKILL)
            hits.append(("pidfd kill", pid))
    except OSError:
        pass
print("HIJACKED" if hits else "blocked", hits)
