# expect: ok
# Run right after inflight_fd_cycle.py on the same worker: its abstract names must be gone.
import socket
found = []
for name in [f"\0{{MARKER}}-{i}" for i in range(8)] + ["\0{{MARKER}}-dgram"]:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM if not name.endswith("dgram") else socket.SOCK_DGRAM)
    try:
        s.connect(name)
        found.append(name[1:])
    except OSError:
        pass
    s.close()
with open("/proc/net/unix") as f:
    names = [l.split()[-1] for l in f.read().splitlines()[1:] if l.split()[-1].startswith("@")]
found += [n for n in names if "{{MARKER}}" in n]
print("STATE" if found else "clean", found)
