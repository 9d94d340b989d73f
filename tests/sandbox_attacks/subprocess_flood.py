# expect: timeout runtime_error memory_limit
# Floods the machine with long-lived child processes carrying a marker in their command line.
import subprocess
procs = []
while True:
    try:
        procs.append(subprocess.Popen(["sh", "-c", "sleep 1000; : {{MARKER}}"]))
    except OSError:
        pass
