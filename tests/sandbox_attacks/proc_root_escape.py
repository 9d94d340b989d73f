# expect: ok
# Walks out through /proc/<pid>/root and /proc/<pid>/cwd of every process it can see, and looks for
# the host's files (the repo, the caller's HOME, /etc/shadow) through them.
import os
hits = []
for pid in ["self", "thread-self", "1"] + [n for n in os.listdir("/proc") if n.isdigit()]:
    for link in ("root", "cwd"):
        base = f"/proc/{pid}/{link}"
        for rel in ("work/main/sandbox/pool.py", "etc/shadow", "{{TOKEN_PATH}}".lstrip("/"),
                    "{{HOME}}/.ssh/id_rsa".lstrip("/"), "root/.bash_history", "{{SENTINEL}}".lstrip("/")):
            try:
                with open(os.path.join(base, rel), "rb") as f:
                    f.read(16)
                hits.append(os.path.join(base, rel))
            except OSError:
                pass
        try:
            with open(os.path.join(base, "{{SENTINEL}}".lstrip("/")), "a") as f:
                f.write("pwned")
            hits.append("write " + base)
        except OSError:
            pass
print("ESCAPED" if hits else "blocked", hits)
print("root:", sorted(os.listdir("/")), "/root:", os.path.exists("/root") and os.listdir("/root"),
      "/work:", os.path.exists("/work"))
