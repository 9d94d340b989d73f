# expect: ok
# Games with its own output pipe: non-blocking mode, shrinking it to one page, growing it as far as
# the kernel allows, re-opening it for reading through /proc and eating back what it wrote, splice and
# tee into it; finally prints a last line and exits 0. The result must be ok, on time, and contain
# the last line.
import fcntl, os
os.set_blocking(1, False)
for size in (4096, 1 << 20, 1 << 30):
    try:
        print("pipe size", fcntl.fcntl(1, 1031, size), flush=True)  # F_SETPIPE_SZ
    except OSError as e:
        print("setpipe", size, e.strerror, flush=True)
try:
    r = os.open("/proc/self/fd/1", os.O_RDONLY | os.O_NONBLOCK)
    os.write(1, b"this line is eaten\n")
    print("ate back:", os.read(r, 100), flush=True)
    os.close(r)
except OSError as e:
    print("reopen:", e.strerror, flush=True)
a, b = os.pipe()
os.write(b, b"spliced line\n")
try:
    os.splice(a, 1, 13)
except (OSError, AttributeError) as e:
    print("splice:", e, flush=True)
os.set_blocking(1, True)
print("last line", flush=True)
