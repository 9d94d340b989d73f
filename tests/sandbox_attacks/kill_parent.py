# expect: ok runtime_error timeout
# Tries to kill whoever started it: the parent pid, pid 1, and every pid it can see.
import os, signal
for pid in [os.getppid(), 1, {{CALLER_PID}}]:
    for sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGSTOP):
        try:
            os.kill(pid, sig)
        except OSError:
            pass
for name in os.listdir("/proc"):
    if name.isdigit() and int(name) != os.getpid():
        try:
            os.kill(int(name), signal.SIGKILL)
        except OSError:
            pass
print("done")
