# expect: timeout
# Sleeps past the deadline while helpers keep forking (and re-forking into new sessions) right up to
# and after the kill; nothing may survive the run.
import os, time, signal
signal.signal(signal.SIGTERM, signal.SIG_IGN)
for i in range(3):
    if os.fork() == 0:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        while True:
            try:
                pid = os.fork()
            except OSError:
                time.sleep(0.01)
                continue
            if pid == 0:
                os.setsid()
                if os.fork() == 0:
                    os.execvp("sh", ["sh", "-c", "sleep 100; : {{MARKER}}"])
                os._exit(0)
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
            time.sleep(0.05)
time.sleep(100)
