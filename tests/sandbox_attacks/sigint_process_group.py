# expect: ok runtime_error
# The program shares a process group with whatever started it; SIGINT (which Python handles) sent to
# the whole group must not reach the supervisor.
import os, signal, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
for target in (0, os.getpgrp()):
    try:
        os.killpg(target, signal.SIGINT)
    except OSError as e:
        print("killpg", target, e)
try:
    os.kill(0, signal.SIGINT)
except OSError as e:
    print("kill0", e)
time.sleep(0.3)
print("survived", os.getpgrp(), os.getsid(0))
