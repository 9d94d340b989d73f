# expect: ok
# ptrace in every form, against processes of its own run (children, its parent pid 1 of the run,
# PTRACE_TRACEME, seize), and process_vm_writev into a child: ptrace is not reachable at all (a
# traced, stopped process at the deadline and the kernel's ptrace code are surface we do not need).
import ctypes, os, signal, time
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.restype = ctypes.c_long
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
class iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
wins = []
box = ctypes.create_string_buffer(b"original", 16)
kid = os.fork()
if kid == 0:
    if libc.ptrace(0, 0, None, None) == 0:  # PTRACE_TRACEME
        os.write(1, b"ESCAPED traceme\n")
    time.sleep(3)
    os._exit(0)
time.sleep(0.1)
for req, name in [(16, "attach"), (0x4206, "seize")]:
    if libc.ptrace(req, kid, None, None) == 0:
        wins.append(name)
if os.fork() == 0:
    if libc.ptrace(16, 1, None, None) == 0:  # the run's pid 1, our parent
        os.write(1, b"ESCAPED attach to pid 1\n")
    os._exit(0)
os.wait()
local = iovec(ctypes.cast(ctypes.c_char_p(b"PATCHED!"), ctypes.c_void_p), 8)
remote = iovec(ctypes.addressof(box), 8)
if libc.process_vm_writev(kid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0) == 8:
    wins.append("process_vm_writev")
os.kill(kid, signal.SIGKILL)
print("ESCAPED" if wins else "blocked", wins)
