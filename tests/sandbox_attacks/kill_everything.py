# expect: ok runtime_error timeout
import os, signal
for sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGSTOP):
    try:
        os.kill(-1, sig)
    except OSError:
        pass
try:
    os.killpg(0, signal.SIGKILL)
except OSError:
    pass
print("still here")
