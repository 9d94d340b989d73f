# expect: ok
# Children in their own process groups and sessions, so that killing a process group misses them.
import os, time
for i in range(3):
    if os.fork() == 0:
        if i == 2:
            os.setsid()
        else:
            os.setpgid(0, 0)
        os.execvp("sh", ["sh", "-c", "sleep 1000; : {{MARKER}}"])
time.sleep(0.2)
print("parent exits")
