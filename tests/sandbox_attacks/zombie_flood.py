# expect: ok
# Fills the run with zombies: children that exit and are never reaped, and orphans re-parented to
# the run's pid 1 (which never reaps either), up to the process limit; then pid 1 exits at once. The
# result must come promptly and nothing may be left.
import os, time
n = 0
try:
    while n < 200:
        pid = os.fork()
        if pid == 0:
            try:
                if os.fork() == 0:  # an orphan, for pid 1 to (not) reap
                    os.execvp("sh", ["sh", "-c", "exit 0; : {{MARKER}}"])
            finally:
                os._exit(0)
        n += 1
except OSError as e:
    print("fork refused after", n, e.strerror)
time.sleep(0.2)
print("zombies", sum(1 for p in os.listdir("/proc") if p.isdigit()))
