# expect: ok
# Queued real-time signals are counted per HOST uid, in every user namespace up to the host's: with
# the caller's RLIMIT_SIGPENDING (~100000) one program queued them all to itself, and no other process
# of that uid (other sandboxes) could queue a signal or create a POSIX timer until it ended.
import ctypes, os, resource, signal
libc = ctypes.CDLL(None, use_errno=True)
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGRTMIN, signal.SIGRTMIN + 1])
class sigval(ctypes.Union):
    _fields_ = [("i", ctypes.c_int), ("p", ctypes.c_void_p)]
try:
    resource.setrlimit(resource.RLIMIT_SIGPENDING, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    print("RAISED sigpending")
except (ValueError, OSError):
    pass
n, me = 0, os.getpid()
while n < 200000 and libc.sigqueue(me, int(signal.SIGRTMIN) + (n & 1), sigval(n)) == 0:
    n += 1
print("queued", n, resource.getrlimit(resource.RLIMIT_SIGPENDING))
print("ESCAPED: queued" if n > 4096 else "bounded", n)
