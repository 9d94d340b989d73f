# expect: ok
# Huge argv and environment for child processes, and a huge stack of nested shells.
import os, subprocess
for n in (1 << 16, 1 << 20, 16 << 20):
    try:
        r = subprocess.run(["/bin/true", "A" * n], env={"X": "B" * n}, timeout=1)
        print(n, "exec ok", r.returncode)
    except (OSError, MemoryError, subprocess.SubprocessError) as e:
        print(n, "exec refused:", type(e).__name__, getattr(e, "strerror", ""))
try:
    r = subprocess.run(["/bin/sh", "-c", "a=$(head -c 3000000 /dev/zero | tr '\\0' x); export a; /bin/true; echo $?"],
                       capture_output=True, text=True, timeout=2)
    print("sh:", r.stdout.strip(), r.stderr.strip()[:100])
except subprocess.SubprocessError as e:
    print("sh", e)
print("done")
