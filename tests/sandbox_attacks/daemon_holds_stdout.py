# expect: ok
# A detached orphan keeps stdout/stderr open forever: the result must arrive anyway, promptly.
import os
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execvp("sh", ["sh", "-c", "while true; do sleep 1; done; : {{MARKER}}"])
    os._exit(0)
print("main done")
