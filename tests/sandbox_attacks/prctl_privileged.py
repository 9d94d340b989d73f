# expect: ok
# prctl()s that need a privilege or reach beyond the process: IO flusher,
# PR_SET_MM (rewriting its own memory map description, exe link), securebits, keepcaps + setuid,
# core scheduling cookies shared with pid 1 of the run; then a subreaper grandchild with a parent-death
# signal of 0, renamed like the zygote, meant to survive.
import ctypes, os, time
libc = ctypes.CDLL(None, use_errno=True)
wins = []
for opt, a2, a3, name in [(57, 1, 0, "PR_SET_IO_FLUSHER"),
                          (35, 10, 0x1000, "PR_SET_MM start_brk"), (35, 13, 0, "PR_SET_MM exe_file"),
                          (8, 0x2f, 0, "PR_SET_SECUREBITS"), (47, 2, 12, "PR_CAP_AMBIENT_RAISE net_admin"),
                          (24, 0, 0, "PR_CAPBSET_DROP") ]:
    if libc.prctl(opt, a2, a3, 0, 0) == 0 and name != "PR_CAPBSET_DROP":
        wins.append(name)
# (PR_SET_MEMORY_MERGE needs no privilege: KSM, when the host runs it, is a side channel - README.)
libc.prctl(62, 1, 0, 0, 0)       # PR_SCHED_CORE_CREATE for ourselves: harmless
if libc.prctl(62, 3, 1, 0, 0) == 0 and os.getpid() != 1:  # SHARE_FROM pid 1 of the run
    print("shared a core-scheduling cookie with our pid 1")
if os.fork() == 0:
    libc.prctl(36, 1, 0, 0, 0)   # PR_SET_CHILD_SUBREAPER
    libc.prctl(1, 0, 0, 0, 0)    # no parent-death signal
    libc.prctl(15, b"python3", 0, 0, 0)
    os.setsid()
    if os.fork() == 0:
        os.execvp("sh", ["sh", "-c", "sleep 1000; : {{MARKER}}"])
    time.sleep(1000)
time.sleep(0.2)
print("ESCAPED" if wins else "blocked", wins)
