# expect: ok
# Looks at every descriptor it inherited for a way out: a socket to the supervisor, a directory fd
# outside the sandbox, a host pipe; and at the descriptors of every other process it can see.
# Expected: 0-2 (stdin, stdout, stderr) and 3 (the setup-flag channel to the zygote, a socket
# whose other end only ever reads what this process sends).
import os, socket, stat
found = []
for fd in range(0, 1024):
    try:
        st = os.fstat(fd)
    except OSError:
        continue
    try:
        target = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        target = "?"
    found.append((fd, stat.S_IFMT(st.st_mode), target))
for fd, kind, target in found:
    if fd > 3:
        print("ESCAPED unexpected fd", fd, target)
    if stat.S_ISDIR(kind):
        print("ESCAPED dir fd", fd, os.listdir(fd))
    if stat.S_ISSOCK(kind):
        s = socket.socket(fileno=os.dup(fd))
        try:  # whatever the other end is, it must not obey: junk, a fake EXIT/KILL, a fake DONE
            s.setblocking(False)
            for msg in (b"\x03", b"\x02" + b"\0" * 8, b"\x0c" + b"\0" * 40):
                s.send(msg)
            try:
                data = s.recv(100)
                print("ESCAPED: the other end of fd", fd, "talks:", data)
            except BlockingIOError:
                pass
        except OSError:
            pass
        s.close()
me = os.readlink("/proc/self")
for pid in os.listdir("/proc"):
    if pid.isdigit() and pid != me:
        try:
            print("ESCAPED fds of", pid, os.listdir(f"/proc/{pid}/fd"))
        except OSError:
            pass
print("fds", found)
