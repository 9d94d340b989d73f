# expect: ok
# Kernel memory outside memory_mb: every process fills pipes (grown to the 1 MiB maximum), closes
# their write ends and keeps only the read ends, up to its descriptor limit. The kernel's per-user pipe
# budget (fs.pipe-user-pages-soft) must keep the total bounded, far below the host's memory.
import fcntl, os, time
r, w = os.pipe()
N = 40
for i in range(N):
    if os.fork() == 0:
        held = 0
        try:
            while True:
                a, b = os.pipe()
                try:
                    fcntl.fcntl(b, 1031, 1 << 20)
                except OSError:
                    pass
                os.set_blocking(b, False)
                try:
                    while True:
                        held += os.write(b, b"x" * 65536)
                except BlockingIOError:
                    pass
                os.close(b)
        except OSError:
            pass
        os.write(w, b"%d\n" % held)
        time.sleep(10)
        os._exit(0)
vals = []
while len(vals) < N:
    vals += [int(x) for x in os.read(r, 100000).split()]
mib = sum(vals) >> 20
print("MiB held in pipes by", N, "processes:", mib)
print("ESCAPED: unbounded pipe memory" if mib > 1024 else "bounded")
