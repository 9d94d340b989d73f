# expect: timeout
# Races the clean-up of the writable dirs: until it is killed at the deadline, helpers keep swapping
# entries between directories and symlinks to /, /usr, /proc/1/root and the host's files, renaming
# them, hard-linking main.py; when the zygote empties the dirs, nothing may be followed outside.
import os, time
targets = ["/", "/usr", "/proc/1/root", "/proc/self/root/usr", "{{SENTINEL_DIR}}", "{{SENTINEL}}", "/proc/1/cwd"]
def churn(base, k):
    i = 0
    while True:
        i += 1
        name = os.path.join(base, f"x{k}")
        try:
            if i % 2:
                os.symlink(targets[i % len(targets)], name + ".tmp")
                os.rename(name + ".tmp", name)
            else:
                os.makedirs(name + ".d/a/b", exist_ok=True)
                try:
                    os.rename(name + ".d", name)
                except OSError:
                    os.unlink(name)
                    os.rename(name + ".d", name)
            os.link("main.py" if base == "." else os.path.abspath("main.py"), os.path.join(base, f"hl{k}-{i % 50}"))
        except OSError:
            pass
for k, base in enumerate([".", "/tmp", "/dev/shm", ".", "/tmp"]):
    if os.fork() == 0:
        churn(base, k)
time.sleep(1000)
