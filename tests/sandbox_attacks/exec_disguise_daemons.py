# expect: ok
# Daemons disguised as the sandbox's own processes: exec'd with argv[0] "bwrap" or the zygote's
# command line, renamed (comm) to "python3", started through nohup / setsid -f / a double-forking
# shell with job control off and SIGHUP ignored, their stdio on /dev/null; the program then exits.
import os, subprocess, sys, time
zygote_argv = [a.decode() for a in open("/proc/1/cmdline", "rb").read().split(b"\0")[:-1]]
tries = [
    ["sh", "-c", "exec -a bwrap sleep 1000 {{MARKER}}"],
    ["sh", "-c", "trap '' HUP TERM INT; (setsid sleep 1000 {{MARKER}} &) ; exit 0"],
    ["sh", "-c", "nohup sleep 1000 {{MARKER}} >/dev/null 2>&1 </dev/null & disown 2>/dev/null; exit 0"],
    ["setsid", "-f", "sleep", "1000", "{{MARKER}}"],
]
for argv in tries:
    try:
        subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    except OSError as e:
        print(argv[0], e.strerror)
if os.fork() == 0:  # the zygote's own argv, exactly
    os.setsid()
    os.execv(sys.executable, [sys.executable, "-I", "-S", "-B", "-c", "import time; time.sleep(1000)  # {{MARKER}}"]
             + zygote_argv[6:])
time.sleep(0.3)
print("disguised daemons started")
