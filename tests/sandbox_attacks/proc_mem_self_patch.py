# expect: ok
# Writes through /proc/self/mem (which ignores page protections) into the read-only code of the
# interpreter and the C library it shares, page for page, with the zygote and the host's files; and
# tries the zygote's memory (/proc/1/mem). Only its own private copy may change: the host's files,
# the zygote and the next program must be untouched.
import ctypes, hashlib, os, sys
exe = os.path.realpath(sys.executable)
def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()
targets = {}
with open("/proc/self/maps") as f:
    for line in f:
        parts = line.split()
        if len(parts) >= 6 and "r-xp" in parts[1] and parts[5].startswith("/") and (
                parts[5] == exe or "libc" in parts[5] or "libpython" in parts[5]) and os.path.isfile(parts[5]):
            targets.setdefault(parts[5], int(parts[0].split("-")[0], 16))
before = {p: digest(p) for p in targets}
wrote = []
fd = os.open("/proc/self/mem", os.O_RDWR)
for path, addr in targets.items():
    try:
        os.pwrite(fd, b"\xCC" * 16, addr + 0x40)  # int3s at the start of the code
        wrote.append(path)
    except OSError as e:
        print("self write", path, e.strerror)
os.close(fd)
wins = [p for p in targets if digest(p) != before[p]]
for victim in ("/proc/1/mem", "/proc/1/task/1/mem"):
    try:
        vfd = os.open(victim, os.O_RDWR)
        os.pwrite(vfd, b"\xCC", 0x400000)
        wins.append(victim)
    except OSError:
        pass
print("patched own copies of", len(wrote), "files")
print("ESCAPED" if wins else "contained", wins, flush=True)
os._exit(0)  # (the patched code may not be run again)
