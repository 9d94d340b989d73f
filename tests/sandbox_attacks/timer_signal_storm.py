# expect: timeout
# Timers firing as fast as the kernel allows in several processes (setitimer real/virtual/prof every
# microsecond, POSIX timers, timerfds), every handler re-arming and forking more: the deadline must
# still hold, and nothing may keep firing after it.
import ctypes, os, signal, time
def handler(sig, frame):
    signal.setitimer(signal.ITIMER_REAL, 1e-6)
for sig in (signal.SIGALRM, signal.SIGVTALRM, signal.SIGPROF):
    signal.signal(sig, handler)
for _ in range(3):
    if os.fork() == 0:
        break
signal.setitimer(signal.ITIMER_REAL, 1e-6, 1e-6)
signal.setitimer(signal.ITIMER_VIRTUAL, 1e-6, 1e-6)
signal.setitimer(signal.ITIMER_PROF, 1e-6, 1e-6)
libc = ctypes.CDLL(None, use_errno=True)
fds = []
for _ in range(16):
    fd = libc.timerfd_create(1, 0)
    if fd >= 0:
        spec = (ctypes.c_long * 4)(0, 1, 0, 1)  # every nanosecond
        libc.timerfd_settime(fd, 0, spec, None)
        fds.append(fd)
while True:
    for fd in fds:
        try:
            os.read(fd, 8)
        except OSError:
            pass
