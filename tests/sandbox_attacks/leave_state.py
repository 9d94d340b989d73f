# expect: ok
# Leaves traces everywhere it can (files, a directory it makes unremovable, a symlink to /,
# SysV shared memory); the next program must find none of them.
import ctypes, os
for d in (".", "/tmp", "/dev/shm"):
    with open(os.path.join(d, "{{MARKER}}"), "w") as f:
        f.write("state")
os.makedirs("deep/a/b/c")
open("deep/a/b/c/f", "w").close()
os.chmod("deep/a/b", 0)
os.symlink("/", "rootlink")
os.symlink("/usr", "/tmp/usrlink")
libc = ctypes.CDLL(None, use_errno=True)
shmid = libc.shmget(0x5EED, 4096, 0o1666)  # IPC_CREAT | 0666
print("shm", shmid)
os.chmod(".", 0o500)
