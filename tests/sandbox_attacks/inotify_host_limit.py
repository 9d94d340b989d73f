# expect: ok
# inotify instances and fanotify groups are counted against the HOST uid (fs.inotify.max_user_instances,
# 128), across every user namespace: one program took all 128, so that every other process of that
# uid on the host (other sandboxes; with a non-root caller, the caller's own desktop, IDE, systemd)
# could not watch files until the run ended. A watch on the read-only host dirs (the interpreter's
# library) would also show the program when the host or other sandboxes open files there.
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
fds = []
while len(fds) < 200:
    fd = libc.inotify_init1(0o4000)  # IN_NONBLOCK
    if fd < 0:
        break
    fds.append(fd)
wins = []
if fds:
    wins.append(f"{len(fds)} inotify instances")
    if libc.inotify_add_watch(fds[0], os.path.dirname(os.__file__).encode(), 0x20 | 0x1) >= 0:  # IN_OPEN|IN_ACCESS
        wins.append("watching the host's library dir")
fa = libc.fanotify_init(0x200, 0)  # FAN_CLASS_NOTIF | FAN_REPORT_FID: allowed unprivileged since 5.13
if fa >= 0:
    wins.append("fanotify group")
print("ESCAPED" if wins else "blocked", wins, os.strerror(ctypes.get_errno()))
