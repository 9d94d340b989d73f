# expect: ok
# Reads everything under /proc it can (its own and pid 1's files, the kernel's: kallsyms, cmdline,
# mountinfo, sysvipc, net, /proc/sys) looking for what the caller must not reveal: its secret
# environment variable, its HOME, the host paths of the test's files.
import os
needles = {"secret": b"{{SECRET}}", "home": b"{{HOME}}", "sentinel dir": b"{{SENTINEL_DIR}}"}
found = set()
def scan(path, limit=1 << 20):
    try:
        with open(path, "rb") as f:
            data = f.read(limit)
    except OSError:
        return
    for name, needle in needles.items():
        if needle in data:
            found.add((name, path))
skip = {"mem", "pagemap", "kcore", "kmsg", "clear_refs", "sysrq-trigger", "attr", "map_files", "task", "fd",
        "fdinfo", "ns", "cwd", "root", "exe", "net", "self", "thread-self", "kpagecount", "kpageflags",
        "kpagecgroup", "sys"}
for top in ["/proc/self", "/proc/1", "/proc"]:
    for name in os.listdir(top):
        if name in skip or (top == "/proc" and name.isdigit()):
            continue
        p = os.path.join(top, name)
        if os.path.isfile(p):
            scan(p)
for dp, dn, fn in os.walk("/proc/sys"):
    for f in fn:
        scan(os.path.join(dp, f), 1 << 14)
for dp, dn, fn in os.walk("/proc/self/net"):
    for f in fn:
        scan(os.path.join(dp, f))
for p in ("/sys/kernel", "/sys/fs/cgroup", "/sys/class/net"):
    if os.path.exists(p):
        print("sysfs visible:", p)
print("LEAK" if found else "clean", sorted(found))
