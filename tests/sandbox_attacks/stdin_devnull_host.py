# expect: ok
# With no stdin, fd 0 is the HOST's /dev/null (opened by the caller). Change its mode or owner, its
# times, its extended attributes, lock it, re-open it read-write through /proc, replace it via its
# /proc link: /dev/null must stay a world-writable character device for everyone on the host.
import ctypes, fcntl, os, stat
libc = ctypes.CDLL(None, use_errno=True)
wins = []
st = os.fstat(0)
print("stdin is", "char device" if stat.S_ISCHR(st.st_mode) else oct(st.st_mode), os.major(st.st_rdev), os.minor(st.st_rdev))
for what, fn in [("fchmod", lambda: os.fchmod(0, 0)), ("fchown", lambda: os.fchown(0, os.getuid(), os.getgid())),
                 ("chmod via proc", lambda: os.chmod("/proc/self/fd/0", 0)),
                 ("setxattr", lambda: os.setxattr("/proc/self/fd/0", "user.evil", b"1")),
                 ("security xattr", lambda: os.setxattr("/proc/self/fd/0", "security.evil", b"1")),
                 ("utime past", lambda: os.utime(0, (0, 0)))]:
    try:
        fn()
        wins.append(what)
    except (OSError, NotImplementedError):
        pass
for how in (os.O_RDWR, os.O_WRONLY | os.O_TRUNC):
    try:
        fd = os.open("/proc/self/fd/0", how)
        os.write(fd, b"into the host's /dev/null\n")  # harmless: it is /dev/null
        os.close(fd)
    except OSError:
        pass
try:
    fcntl.flock(0, fcntl.LOCK_EX | fcntl.LOCK_NB)  # nobody locks /dev/null; released with us
except OSError:
    pass
for path in ("/dev/null", "/proc/self/fd/0"):
    try:
        os.unlink(path)
        wins.append("unlink " + path)
    except OSError:
        pass
try:
    os.rename("/dev/zero", "/dev/null")
    wins.append("rename over /dev/null")
except OSError:
    pass
st2 = os.stat("/dev/null")
if not stat.S_ISCHR(st2.st_mode) or stat.S_IMODE(st2.st_mode) != 0o666:
    wins.append(("dev/null now", oct(st2.st_mode)))
print("ESCAPED" if wins else "blocked", wins)
