# expect: memory_limit
# Processes the supervisor may not ptrace-read hide their memory from per-process accounting that
# reads /proc/PID/smaps_rollup (unreadable, once counted as zero): six processes, made
# non-dumpable two ways - prctl(PR_SET_DUMPABLE, 0), and running an interpreter binary the
# program made execute-only (the kernel marks a process that execs an unreadable file
# non-dumpable) - each hold ~150 MiB, together 900 MiB with memory_mb=256.
import ctypes, os, shutil, stat, sys, time
libc = ctypes.CDLL(None, use_errno=True)
HOLD = "x = bytearray(150 << 20)\nfor i in range(0, len(x), 4096): x[i] = 1\nimport time; time.sleep(30)\n"
exe = None
try:  # an execute-only copy of the interpreter (the tmpfs has room for it when it is small)
    exe = "/tmp/python-x"
    shutil.copyfile(sys.executable, exe)
    os.chmod(exe, stat.S_IXUSR)
except OSError:
    exe = None
for i in range(6):
    if os.fork() == 0:
        if i % 2 and exe:
            os.execv(exe, [exe, "-S", "-c", HOLD])
        libc.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0
        exec(HOLD)
time.sleep(3)
print("LEAK: 900 MiB held, run not stopped")
