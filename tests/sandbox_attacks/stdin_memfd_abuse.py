# expect: ok
# Its stdin is an in-memory file: writing to it, growing it, re-opening it read-write through
# /proc/self/fd/0 would let the program hold memory outside its limit. All must fail.
import os
wins = []
data = os.read(0, 100)
for how in ("fd0", "proc"):
    try:
        fd = 0 if how == "fd0" else os.open("/proc/self/fd/0", os.O_RDWR)
    except OSError as e:
        print(how, "reopen:", e.strerror)
        continue
    for name, op in [("write", lambda: os.pwrite(fd, b"x" * 4096, 0)),
                     ("grow", lambda: os.ftruncate(fd, 16 << 20)),
                     ("shrink", lambda: os.ftruncate(fd, 0)),
                     ("append", lambda: os.pwrite(fd, b"y" * (1 << 20), 1 << 20))]:
        try:
            op()
            wins.append((how, name))
        except OSError:
            pass
print("read", data[:20], "size now", os.fstat(0).st_size)
print("ESCAPED" if wins else "blocked", wins)
