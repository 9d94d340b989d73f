# expect: memory_limit
# Memory the kernel books as "shared": MAP_SHARED anonymous mappings, one per process, each within
# the per-process address-space limit. 6 x 200 MiB must not stay resident under a 256 MiB limit.
import mmap, os, time
r, w = os.pipe()
for i in range(6):
    if os.fork() == 0:
        m = mmap.mmap(-1, 200 << 20, mmap.MAP_SHARED)
        for off in range(0, len(m), 4096):
            m[off] = 1
        os.write(w, b"x")
        time.sleep(60)
        os._exit(0)
got = 0
while got < 6:
    got += len(os.read(r, 6))
time.sleep(0.3)  # the supervisor polls every 10-50 ms
print("ESCAPED: 1200 MiB of shared memory resident under a 256 MiB limit")
