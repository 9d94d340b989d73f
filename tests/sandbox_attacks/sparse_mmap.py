# expect: ok memory_limit runtime_error
# Huge sparse files and mappings: ftruncate to 1 TiB, seek-and-write far away, map a 100 GiB region
# with MAP_NORESERVE, map a tmpfs file in many processes and touch it.
import mmap, os, time
for where in ("sparse", "/tmp/sparse", "/dev/shm/sparse"):
    fd = os.open(where, os.O_RDWR | os.O_CREAT, 0o600)
    for size in (1 << 40, 1 << 30, 15 << 20):
        try:
            os.ftruncate(fd, size)
            print(where, "truncate", size, "ok")
            break
        except OSError as e:
            print(where, "truncate", size, e.strerror)
    try:
        os.pwrite(fd, b"x", 1 << 39)
        print("ESCAPED far write", where)
    except OSError as e:
        print(where, "far write", e.strerror)
    os.close(fd)
try:
    m = mmap.mmap(-1, 100 << 30, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | 0x4000)  # MAP_NORESERVE
    print("100 GiB mapping: ESCAPED the address-space limit")
except (OSError, OverflowError, ValueError) as e:
    print("100 GiB mapping refused:", e)
fd = os.open("/dev/shm/sparse", os.O_RDWR)
size = os.fstat(fd).st_size
kids = []
for i in range(8):
    pid = os.fork()
    if pid == 0:
        m = mmap.mmap(fd, size)
        for off in range(0, size, 4096):
            m[off] = 2
        time.sleep(0.5)
        os._exit(0)
    kids.append(pid)
for k in kids:
    os.waitpid(k, 0)
print("shared tmpfs file mapped by 8 processes: fine (counted once)")
