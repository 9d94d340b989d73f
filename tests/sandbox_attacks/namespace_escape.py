# expect: ok
# New user namespace (to get capabilities), mounts, setns into pid 1's namespaces: all refused.
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
wins = []
for flags, name in [(0x10000000, "user"), (0x20000, "mount"), (0x40000000, "net"), (0x20000000, "pid")]:
    if libc.unshare(flags) == 0:
        wins.append("unshare " + name)
if libc.mount(b"none", b"/tmp", b"tmpfs", 0, None) == 0:
    wins.append("mount")
if libc.chroot(b"/tmp") == 0:
    wins.append("chroot")
for ns in ("user", "mnt", "pid", "net"):
    try:
        fd = os.open(f"/proc/1/ns/{ns}", os.O_RDONLY)
        if libc.setns(fd, 0) == 0:
            wins.append("setns " + ns)
    except OSError:
        pass
for sysc, name in [(250, "keyctl"), (321, "bpf"), (425, "io_uring_setup"), (298, "perf_event_open")]:
    if os.uname().machine == "x86_64" and libc.syscall(sysc, 0, 0, 0, 0, 0) >= 0:
        wins.append(name)
print("ESCAPED" if wins else "blocked", wins, os.getuid())
