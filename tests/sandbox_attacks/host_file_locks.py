# expect: timeout
# Locks the host files the sandbox sees (read-only binds of the interpreter, its library, the C
# library, ld.so.cache, localtime) every way there is - flock, POSIX and open-file-description
# record locks, leases - then hangs, with helpers doing the same. Read-only binds are the host's own
# inodes, so those locks are shared with the host while the run lives; all must be gone with it.
import fcntl, os, struct, sys, time
paths = [os.path.realpath(sys.executable), os.__file__, "/etc/ld.so.cache", "/etc/localtime", "/etc/passwd"]
paths += [os.path.join(os.path.dirname(os.__file__), n) for n in ("json/__init__.py", "re/__init__.py")]
held = []
for i in range(3):
    if i and os.fork() != 0:
        continue
    for p in paths:
        try:
            fd = os.open(p, os.O_RDONLY)
        except OSError:
            continue
        for op in (lambda: fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB), lambda: fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB),
                   lambda: fcntl.fcntl(fd, fcntl.F_SETLK, struct.pack("hhqqi", fcntl.F_RDLCK, 0, 0, 0, 0)),
                   lambda: fcntl.fcntl(fd, 37, struct.pack("hhqqi", fcntl.F_RDLCK, 0, 0, 0, 0)),  # F_OFD_SETLK
                   lambda: fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)):
            try:
                op()
                held.append(p)
            except OSError:
                pass
    break
print("locks held on", sorted(set(held)), flush=True)
time.sleep(100)
