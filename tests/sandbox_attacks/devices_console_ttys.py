# expect: ok
# Terminals and devices of the host: the console, virtual terminals, the kernel log, physical memory,
# I/O ports, userfaultfd, uinput, other sessions' pseudo-terminals; stealing a controlling terminal
# (TIOCSCTTY with force), redirecting the console (TIOCCONS), virtual-terminal ioctls.
import fcntl, os, termios
wins = []
for dev in ("/dev/console", "/dev/tty0", "/dev/tty1", "/dev/ttyS0", "/dev/kmsg", "/dev/mem", "/dev/kmem", "/dev/port",
            "/dev/userfaultfd", "/dev/uinput", "/dev/vhost-net", "/dev/kvm", "/dev/fuse", "/dev/loop-control",
            "/dev/net/tun", "/dev/vcs", "/dev/snapshot", "/dev/nvidia0", "/dev/dri/card0", "/proc/kmsg"):
    try:
        fd = os.open(dev, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        wins.append(dev)
        os.close(fd)
    except OSError:
        pass
try:
    fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    os.write(fd, b"\x1b]0;pwned\x07INJECTED\n")
    wins.append("/dev/tty")
except OSError:
    pass
m = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY)
for fd in (0, 1, 2, m):
    for req, arg, name in [(termios.TIOCSCTTY, 1, "TIOCSCTTY force"), (getattr(termios, "TIOCCONS", 0x541D), 0, "TIOCCONS")]:
        try:
            fcntl.ioctl(fd, req, arg)
            if name == "TIOCCONS" or fd != m:
                wins.append((name, fd))
        except OSError:
            pass
for req in (0x5600, 0x5606, 0x4B3A):  # VT_OPENQRY, VT_ACTIVATE, KDSETMODE
    try:
        fcntl.ioctl(m, req, 1)
        wins.append(hex(req))
    except OSError:
        pass
print("ESCAPED" if wins else "blocked", wins)
