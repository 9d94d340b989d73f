# expect: ok
# Goes after the supervisor (the zygote, pid 1 of the worker, visible in /proc): its control socket
# through pidfd_getfd, signals it handles (SIGINT) by pidfd
# and by process group, SIGIO aimed at it with F_SETOWN.
import ctypes, fcntl, os, signal, socket
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
x86 = os.uname().machine == "x86_64"
NR = dict(pidfd_getfd=438, pidfd_send_signal=424)
me = os.readlink("/proc/self")
wins = []
for name in os.listdir("/proc"):
    if not name.isdigit() or name == me:
        continue
    try:
        pfd = os.open(f"/proc/{name}", os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        continue
    for target_fd in range(0, 64):
        r = libc.syscall(NR["pidfd_getfd"], pfd, target_fd, 0)
        if r >= 0:
            wins.append(("pidfd_getfd", name, target_fd))
            try:
                s = socket.socket(fileno=r)
                s.send(bytes([3]))  # OP_EXIT
            except OSError:
                pass
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL, signal.SIGSTOP):
        if libc.syscall(NR["pidfd_send_signal"], pfd, int(sig), None, 0) == 0:
            print("pidfd_send_signal accepted", name, sig)
    # (process_vm_readv, kcmp, prlimit take pids of our own namespace: the zygote has none there)
    os.close(pfd)
for target in (0, -1, -os.getpgrp() if os.getpgrp() else 0):
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGUSR1):
        try:
            os.killpg(abs(target), sig) if target else os.kill(0, sig)
        except (OSError, KeyboardInterrupt):
            pass
r, w = os.pipe()
try:
    fcntl.fcntl(r, fcntl.F_SETOWN, -1)  # process group 1 - the run's own, now
    fcntl.fcntl(r, fcntl.F_SETSIG, signal.SIGINT)
    fl = fcntl.fcntl(r, fcntl.F_GETFL)
    fcntl.fcntl(r, fcntl.F_SETFL, fl | os.O_ASYNC)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.write(w, b"x")
except OSError as e:
    print("fsetown", e)
print("HIJACKED" if wins else "blocked", wins)
