# expect: ok
# Host-wide state a process could change with the right capability: the clock (settimeofday,
# clock_settime, adjtimex), the host name and domain name (the run has a uts namespace of its own),
# swap, reboot, the kernel log. All must fail, or stay private.
import ctypes, os, socket, time
libc = ctypes.CDLL(None, use_errno=True)
wins = []
class timespec(ctypes.Structure):
    _fields_ = [("sec", ctypes.c_long), ("nsec", ctypes.c_long)]
ts = timespec(int(time.time()) + 86400 * 365, 0)
if libc.clock_settime(0, ctypes.byref(ts)) == 0:
    wins.append("clock_settime")
class timeval(ctypes.Structure):
    _fields_ = [("sec", ctypes.c_long), ("usec", ctypes.c_long)]
if libc.settimeofday(ctypes.byref(timeval(0, 0)), None) == 0:
    wins.append("settimeofday")
buf = (ctypes.c_char * 512)()
ctypes.c_uint.from_buffer(buf).value = 0x0001 | 0x0002  # ADJ_OFFSET | ADJ_FREQUENCY
if libc.adjtimex(buf) >= 0:
    wins.append("adjtimex (set)")
if libc.sethostname(b"pwned-host", 10) == 0:
    print("sethostname worked (private uts namespace):", socket.gethostname())
if libc.setdomainname(b"pwned", 5) == 0:
    print("setdomainname worked (private uts namespace)")
if libc.swapoff(b"/dev/vda") == 0 or libc.swapon(b"/sandbox/main.py", 0) == 0:
    wins.append("swap")
if libc.reboot(0) == 0:  # LINUX_REBOOT_CMD_CAD_OFF
    wins.append("reboot")
if libc.klogctl(5, None, 0) == 0:  # clear the kernel log
    wins.append("klogctl")
if libc.sethostname(b"sandbox", 7) != 0:
    pass
print("ESCAPED" if wins else "blocked", wins)
