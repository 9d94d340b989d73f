# expect: ok
# Classic daemon: fork, setsid, fork again, detach; the daemon lives on after the program exits.
import os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execvp("sh", ["sh", "-c", "sleep 1000; : {{MARKER}}"])
    os._exit(0)
time.sleep(0.2)
print("parent exits")
