# expect: ok
# Writes to device nodes, creates new ones with mknod, and probes what /dev holds.
import os, stat
hits = []
for dev in os.listdir("/dev"):
    p = "/dev/" + dev
    if dev in ("null", "zero", "full", "random", "urandom", "tty", "stdout", "stderr", "stdin", "fd", "shm", "pts", "ptmx", "core"):
        continue
    hits.append("unexpected /dev entry " + p)
for p in ("/dev/evil", "/dev/shm/evil_null"):
    try:
        os.mknod(p, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        hits.append("mknod char " + p)
    except OSError:
        pass
for p in ("./sda", "/tmp/mem", "/dev/shm/kmsg"):
    for major, minor in ((8, 0), (1, 1), (1, 11)):
        try:
            os.mknod(p, 0o666 | stat.S_IFCHR, os.makedev(major, minor))
            try:
                fd = os.open(p, os.O_RDWR)
                hits.append(f"opened device {major}:{minor} at {p}")
                os.close(fd)
            except OSError:
                pass
            os.unlink(p)
        except OSError:
            pass
for p in ("/dev/mem", "/dev/kmsg", "/dev/sda", "/dev/vda", "/dev/console", "/dev/tty", "/dev/kvm",
          "/dev/fuse", "/dev/net/tun", "/dev/loop-control"):
    try:
        fd = os.open(p, os.O_WRONLY)
        os.write(fd, b"pwned\n")
        hits.append("write " + p)
        os.close(fd)
    except OSError:
        pass
for p in ("/dev/null", "/dev/zero", "/dev/full", "/dev/urandom"):
    try:
        os.chmod(p, 0o777)
        hits.append("chmod " + p)
    except OSError:
        pass
try:
    os.mkfifo("fifo")  # a FIFO in its own dir is fine
except OSError as e:
    print("mkfifo", e)
print("ESCAPED" if hits else "blocked", hits, sorted(os.listdir("/dev")))
