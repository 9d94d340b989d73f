# expect: ok runtime_error memory_limit
# Memory no process maps is in nobody's resident set, so a resident-memory limit cannot see it:
# memfds written with write(), System V shared memory written then detached, message queues.
# Holding (much) more than the memory limit this way must be impossible.
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
held_mib = 0
chunk = b"x" * (1 << 20)
fds = []
try:
    for i in range(40):
        fd = os.memfd_create(f"m{i}")
        fds.append(fd)
        for _ in range(16):
            os.write(fd, chunk)
            held_mib += 1
except OSError as e:
    print("memfd stopped:", e.strerror)
for i in range(20):
    sid = libc.shmget(0, 32 << 20, 0o1600)  # IPC_PRIVATE, IPC_CREAT | 0600
    if sid < 0:
        print("shmget stopped:", os.strerror(ctypes.get_errno()))
        break
    addr = libc.shmat(sid, None, 0)
    if addr in (None, ctypes.c_void_p(-1).value):
        print("shmat stopped:", os.strerror(ctypes.get_errno()))
        break
    ctypes.memset(addr, 1, 32 << 20)
    libc.shmdt(ctypes.c_void_p(addr))
    held_mib += 32
qid = libc.msgget(0, 0o1600)
print("msgget:", "refused" if qid < 0 else "allowed")
sem = libc.semget(0, 1000, 0o1600)
print("semget:", "refused" if sem < 0 else "allowed")
print("held MiB outside any mapping:", held_mib)
if held_mib > 300:
    print("ESCAPED the memory limit")
