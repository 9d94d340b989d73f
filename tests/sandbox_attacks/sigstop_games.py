# expect: ok
# Stopped processes: a setsid'd grandchild that stops itself while holding stdout, a child that stops
# its parent (pid 1 of the run), SIGTSTP/SIGSTOP to itself. The result must still come promptly.
import os, signal, time
os.kill(os.getpid(), signal.SIGSTOP)
os.kill(os.getpid(), signal.SIGTSTP)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.kill(os.getpid(), signal.SIGSTOP)   # stopped forever, stdout still open
        os.execvp("sh", ["sh", "-c", ": {{MARKER}}; sleep 1000"])
    os._exit(0)
if os.fork() == 0:
    os.kill(os.getppid(), signal.SIGSTOP)
    os.kill(1, signal.SIGSTOP)
    os._exit(0)
time.sleep(0.2)
print("main done", flush=True)
