# expect: ok
# Looks for the parent's secret everywhere it might leak: files, /proc/*/environ, environment.
import os, sys
secret = "{{SECRET}}"
found = []
if any(secret in v for v in os.environ.values()):
    found.append("os.environ")
for path in ["{{TOKEN_PATH}}", "{{HOME}}/.config/token", "/etc/shadow", "/root/.bash_history", "/proc/1/environ",
             "/proc/self/environ"]:
    try:
        if secret in open(path, errors="replace").read():
            found.append(path)
    except OSError:
        pass
for pid in os.listdir("/proc"):
    for name in ("environ", "cmdline"):
        try:
            if secret.encode() in open(f"/proc/{pid}/{name}", "rb").read():
                found.append(f"/proc/{pid}/{name}")
        except OSError:
            pass
for top in ("/home", "/root", "/tmp", "/work", "/var", "/etc", "{{SENTINEL_DIR}}"):
    for dirpath, dirs, files in os.walk(top):
        # The interpreter itself is visible (read-only); no need to search it.
        dirs[:] = [d for d in dirs if not os.path.join(dirpath, d).startswith(sys.base_prefix)]
        for f in files:
            try:
                if secret in open(os.path.join(dirpath, f), errors="replace").read(1 << 20):
                    found.append(os.path.join(dirpath, f))
            except OSError:
                pass
print("LEAK" if found else "clean", found)
