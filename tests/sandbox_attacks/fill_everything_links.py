# expect: ok runtime_error
# Fills the working dir, /tmp and /dev/shm with data, then inodes, hard links and symlink loops
# (including links pointing outside); must stay inside the sandbox's own tmpfs mounts.
import os
for src, dst in [("{{SENTINEL}}", "slink"), ("/etc/passwd", "/tmp/pw"), ("loop2", "loop1"), ("loop1", "loop2"),
                 ("/proc/1/root/{{SENTINEL}}", "/dev/shm/via_proc")]:
    try:
        os.symlink(src, dst)
    except OSError as e:
        print("symlink", dst, e.strerror)
for p in ("slink", "/tmp/pw", "loop1", "/dev/shm/via_proc"):
    try:
        with open(p, "a") as f:
            f.write("pwned")
        print("ESCAPED wrote through", p)
    except OSError as e:
        print("write via", p, e.strerror)
for p in ("/etc/passwd", "/usr/bin/python3", "/root/.pyenv"):
    try:
        os.link(p, "./hl")
        print("ESCAPED hard link to", p)
        os.unlink("./hl")
    except OSError as e:
        print("link", p, e.strerror)
for d in (".", "/tmp", "/dev/shm"):
    try:
        with open(os.path.join(d, "fill"), "wb") as f:
            while True:
                f.write(b"\1" * (1 << 20))
    except OSError as e:
        print(d, "data:", e.strerror)
    n = 0
    try:
        while True:
            os.link(os.path.join(d, "fill"), os.path.join(d, f"h{n}"))
            n += 1
            if n > 70000:
                break
    except OSError as e:
        print(d, "hard links:", n, e.strerror)
n = 0
try:
    while True:
        os.mkdir(f"/tmp/d{n}")
        n += 1
except OSError as e:
    print("dirs:", n, e.strerror)
