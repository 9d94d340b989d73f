# expect: ok
# Run right after leave_state.py: nothing of it may be left.
import ctypes, os
found = []
for d in (".", "/tmp", "/dev/shm"):
    for name in os.listdir(d):
        if name not in ("main.py",):
            found.append(os.path.join(d, name))
libc = ctypes.CDLL(None, use_errno=True)
if libc.shmget(0x5EED, 4096, 0) >= 0:
    found.append("sysv shm")
if not os.access(".", os.W_OK):
    found.append("cwd not writable")
print("STATE" if found else "clean", found)
