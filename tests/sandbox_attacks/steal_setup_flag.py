# expect: ok runtime_error
# fd 3 is the write end of the pipe on which the sandbox learns that setup succeeded. Re-opening it
# through /proc/self/fd/3 gives a READ end of the same pipe: the program drains the "setup OK" byte
# (and replaces it with a forged failure report). Must not turn into a sandbox_error.
import os
try:
    r = os.open("/proc/self/fd/3", os.O_RDONLY | os.O_NONBLOCK)
    print("drained", os.read(r, 100))
    os.close(r)
except OSError as e:
    print("could not reopen fd 3:", e)
try:
    os.write(3, b"Eforged setup failure")
except OSError as e:
    print("write fd 3:", e)
for fd in (1, 2):
    try:
        r = os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_NONBLOCK)
        print("reopened fd", fd, "for reading")
        os.close(r)
    except OSError as e:
        print("fd", fd, e)
print("done")
