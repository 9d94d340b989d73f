# expect: runtime_error ok
# Fills the writable dirs until the filesystem says no; must not reach the host's disk.
import os
for d in (".", "/tmp", "/dev/shm"):
    try:
        with open(os.path.join(d, "fill"), "wb") as f:
            while True:
                f.write(b"\0" * (1 << 20))
    except OSError as e:
        print(d, "stopped:", e.strerror)
n = 0
try:
    while True:
        open(f"empty{n}", "w").close()
        n += 1
except OSError as e:
    print("inodes stopped after", n, e.strerror)
