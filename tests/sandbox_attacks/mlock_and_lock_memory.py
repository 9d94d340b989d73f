# expect: ok
# Memory the kernel may never reclaim or swap: mlock, mlockall (current, future, on fault),
# MAP_LOCKED, SHM_LOCK; with RLIMIT_MEMLOCK 0 every one must fail.
import ctypes, mmap, os
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
wins = []
buf = ctypes.create_string_buffer(1 << 20)
if libc.mlock(buf, 1 << 20) == 0:
    wins.append("mlock")
if libc.syscall(ctypes.c_long(325 if os.uname().machine == "x86_64" else 284), ctypes.addressof(buf), 1 << 20, 1) == 0:
    wins.append("mlock2 onfault")
for flags in (1, 2, 3, 1 | 4, 2 | 4):  # MCL_CURRENT, MCL_FUTURE, MCL_ONFAULT
    if libc.mlockall(flags) == 0:
        wins.append(("mlockall", flags))
        libc.munlockall()
p = libc.mmap(None, 8 << 20, 3, 0x22 | 0x2000, -1, 0)  # MAP_LOCKED
if p not in (None, 2 ** 64 - 1):
    with open("/proc/self/status") as f:
        locked = [l for l in f if l.startswith("VmLck")]
    if locked and int(locked[0].split()[1]) > 0:
        wins.append(("MAP_LOCKED", locked[0].strip()))
print("ESCAPED" if wins else "blocked", wins)
