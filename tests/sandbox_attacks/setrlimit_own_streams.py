# expect: timeout runtime_error
# Turns its own limits against the sandbox's bookkeeping: no file size (SIGXFSZ on any write to a
# file), 4 file descriptors, a 1-second CPU hard limit, no stack growth; prints, then burns CPU until
# the kernel kills it. The output must arrive; the status is the program's, never sandbox_error.
import resource, signal, sys
print("before the limits", flush=True)
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
try:
    with open("f", "w") as f:
        f.write("x")
except OSError as e:
    print("file write:", e.strerror, flush=True)
resource.setrlimit(resource.RLIMIT_NOFILE, (4, 4))
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
try:
    open("/dev/null").close()
    open("/dev/null").close()
except OSError as e:
    print("open:", e.strerror, flush=True)
resource.setrlimit(resource.RLIMIT_CPU, (1, 1))
sys.stdout.write("limits set\n")
sys.stdout.flush()
while True:
    pass
