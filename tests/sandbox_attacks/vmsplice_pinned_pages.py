# expect: memory_limit ok
# Pins memory in pipes that belongs to no process: each page is a transparent huge page (2 MiB) the
# program touched, gave to a pipe with vmsplice (one byte of it is enough to hold the whole page),
# then unmapped. No process maps it any more, so no per-process figure shows it; ~1 GiB of it,
# with memory_mb=256. A memory cgroup still counts it (memory_limit); without one, vmsplice is
# refused (the run may then end ok, having pinned nothing).
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
libc.vmsplice.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_ulong, ctypes.c_uint]
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]


class IoVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


HUGE = 2 << 20
pinned, pipes = 0, []
for _ in range(32):
    r, w = os.pipe()
    pipes.append((r, w))
    for _ in range(16):  # a pipe holds 16 buffers: one huge page each
        raw = libc.mmap(None, 2 * HUGE, 3, 0x22, -1, 0)  # PROT_READ|WRITE, MAP_PRIVATE|ANONYMOUS
        addr = (raw + HUGE - 1) & ~(HUGE - 1)
        libc.madvise(ctypes.c_void_p(addr), HUGE, 14)  # MADV_HUGEPAGE
        ctypes.memset(addr, 0x5A, 1)  # (faults the whole huge page in)
        iov = IoVec(addr, 1)
        if libc.vmsplice(w, ctypes.byref(iov), 1, 0) != 1:
            print("vmsplice refused:", os.strerror(ctypes.get_errno()), "pinned MiB:", pinned >> 20)
            raise SystemExit(0)
        libc.munmap(ctypes.c_void_p(raw), 2 * HUGE)
        pinned += HUGE
print("LEAK: pinned MiB outside every process:", pinned >> 20)
