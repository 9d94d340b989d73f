# expect: ok
# Pushing characters into a terminal's input queue (a classic sandbox escape) must fail.
import fcntl, os, termios
ok = []
for fd in (0, 1, 2):
    try:
        fcntl.ioctl(fd, termios.TIOCSTI, b"x")
        ok.append(fd)
    except OSError:
        pass
try:
    fd = os.open("/dev/tty", os.O_RDWR)
    fcntl.ioctl(fd, termios.TIOCSTI, b"x")
    ok.append("/dev/tty")
except OSError:
    pass
print("INJECTED" if ok else "blocked", ok)
