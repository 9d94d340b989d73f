# expect: ok
# Huge pages (MAP_HUGETLB) are in no process's resident set as the memory limit reads it, so a run
# could hold as much as the host's huge page pool (and, with nr_overcommit_hugepages, ordinary
# memory) outside memory_mb. On a host with huge pages configured the mapping succeeds; here the
# request must not even reach the huge page allocator (ENOMEM there means it did).
import ctypes, errno, os
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
MAP_PRIVATE, MAP_SHARED, MAP_ANON, MAP_HUGETLB = 0x02, 0x01, 0x20, 0x40000
wins = []
for flags, size in [(MAP_PRIVATE | MAP_ANON | MAP_HUGETLB, 2 << 20), (MAP_SHARED | MAP_ANON | MAP_HUGETLB, 2 << 20),
                    (MAP_PRIVATE | MAP_ANON | MAP_HUGETLB | (30 << 26), 1 << 30),  # 1 GiB pages
                    (MAP_PRIVATE | MAP_ANON | MAP_HUGETLB | 0x4000, 64 << 20)]:   # + MAP_NORESERVE
    p = libc.mmap(None, size, 3, flags, -1, 0)
    e = ctypes.get_errno()
    if p not in (None, 2 ** 64 - 1):
        ctypes.memset(p, 1, size)
        wins.append(("mapped", hex(flags)))
    elif e != errno.EPERM:
        wins.append(("reached the huge page allocator", hex(flags), errno.errorcode.get(e)))
print("ESCAPED" if wins else "blocked", wins)
