# expect: ok
# Scheduling knobs aimed at everything of its uid: nice 19 for the whole user (PRIO_USER), one CPU for
# every visible process, idle I/O priority for the user (IOPRIO_WHO_USER), real-time and deadline
# scheduling, raised priority. Only its own processes may change; the zygote that supervises the
# next program (and the host's processes of the same uid) must keep their priority and CPUs.
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
wins = []
uid = os.getuid()
for who, ident in ((os.PRIO_USER, uid), (os.PRIO_USER, 0), (os.PRIO_PGRP, 0), (os.PRIO_PROCESS, 1)):
    try:
        os.setpriority(who, ident, 19)
    except OSError:
        pass
for pid in [int(p) for p in os.listdir("/proc") if p.isdigit()]:
    try:
        os.sched_setaffinity(pid, {0})
    except OSError:
        pass
x86 = os.uname().machine == "x86_64"
IOPRIO_SET = 251 if x86 else 30
libc.syscall(ctypes.c_long(IOPRIO_SET), 3, uid, (3 << 13))  # IOPRIO_WHO_USER, class IDLE
if libc.syscall(ctypes.c_long(IOPRIO_SET), 1, 0, (1 << 13) | 0) == 0:  # class RT for ourselves
    wins.append("ioprio RT")
try:
    os.setpriority(os.PRIO_PROCESS, 0, -10)
    wins.append("negative nice")
except OSError:
    pass
for policy in (os.SCHED_FIFO, os.SCHED_RR):
    try:
        os.sched_setscheduler(0, policy, os.sched_param(1))
        wins.append(f"realtime policy {policy}")
    except OSError:
        pass
attr = (ctypes.c_uint32 * 14)(56, 6, 0, 0, 0, 0, 0)  # size, SCHED_DEADLINE
ctypes.c_uint64.from_buffer(attr, 24).value = 1000000  # runtime
ctypes.c_uint64.from_buffer(attr, 32).value = 2000000  # deadline
if libc.syscall(ctypes.c_long(314 if x86 else 274), 0, ctypes.byref(attr), 0) == 0:
    wins.append("SCHED_DEADLINE")
print("ESCAPED" if wins else "blocked", wins)
