# expect: ok
# Pseudo-terminals are counted host-wide (kernel.pty.max = 4096, 1024 of them reserved for the host's
# own devpts): one program opening /dev/ptmx in 20 processes held all 3072 that every container and
# sandbox on the machine shares. A run may hold a few, never the host's pool.
import os, time
r, w = os.pipe()
kids = []
for i in range(20):
    pid = os.fork()
    if pid == 0:
        fds = []
        try:
            while len(fds) < 240:
                fds.append(os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY))
        except OSError:
            pass
        os.write(w, b"%d\n" % len(fds))
        time.sleep(3)
        os._exit(0)
    kids.append(pid)
held = []
while len(held) < 20:
    held += [int(x) for x in os.read(r, 1000).split()]
total = sum(held)
print("ptys held by the run:", total)
print("ESCAPED: took the host's pty pool" if total > 64 else "bounded")
for pid in kids:
    os.kill(pid, 9)
