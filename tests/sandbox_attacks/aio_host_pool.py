# expect: ok
# Linux AIO contexts come from ONE host-wide pool (fs.aio-max-nr, 65536 events), whatever namespace
# the caller is in: a single io_setup(32768) took all of it, and every database, VM or libaio user on
# the host failed with EAGAIN until the run ended. Any AIO context at all must be refused.
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
NR = {"x86_64": 206, "aarch64": 0}.get(os.uname().machine)
wins, ctxs = [], []
for n in (32768, 4096, 64, 1):
    ctx = ctypes.c_ulong(0)
    if NR is not None and libc.syscall(ctypes.c_long(NR), ctypes.c_long(n), ctypes.byref(ctx)) == 0:
        wins.append(n)
        ctxs.append(ctx)
    else:
        err = ctypes.get_errno()
try:
    print("host aio-nr", open("/proc/sys/fs/aio-nr").read().strip(), "of", open("/proc/sys/fs/aio-max-nr").read().strip())
except OSError:
    pass
print("ESCAPED: io_setup" if wins else "blocked", wins, os.strerror(err) if not wins else "")
