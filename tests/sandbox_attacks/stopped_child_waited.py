# expect: timeout
# The main process waits forever on a child that stopped itself: a hang the deadline must end.
import os, signal
pid = os.fork()
if pid == 0:
    os.setsid()
    os.kill(os.getpid(), signal.SIGSTOP)
    os._exit(0)
os.waitpid(pid, 0)
print("unreachable")
