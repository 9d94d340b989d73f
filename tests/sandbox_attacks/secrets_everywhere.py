# expect: ok
# Host secrets: the caller's environment, ~/.ssh and token files under the caller's HOME, /etc/shadow,
# /root, the repository, /proc/<pid>/environ of anything visible, the zygote's argv and auxv.
import os, glob, sys
secret = "{{SECRET}}"
found = []
def check(path, limit=1 << 20):
    try:
        with open(path, "rb") as f:
            data = f.read(limit)
        if secret.encode() in data:
            found.append(path)
        return data
    except OSError:
        return None
for p in ["{{TOKEN_PATH}}", "{{HOME}}/.ssh/id_rsa", "{{HOME}}/.token", "/etc/shadow", "/etc/gshadow", "/root/.ssh/id_rsa",
          "/root/.bash_history", "/root/.netrc", "/root/.cache", "/work/main/README.md", "/work/main/.git/config",
          "/proc/1/environ", "/proc/self/environ", "/proc/1/cmdline", "/proc/1/auxv", "/proc/1/mountinfo",
          "/proc/self/mountinfo", "/etc/hostname", "/etc/resolv.conf", "/etc/machine-id"]:
    d = check(p)
    if d is not None and p.startswith(("/etc/shadow", "/root/.ssh", "/work", "{{HOME}}")):
        found.append("readable " + p)
if any(secret in v for v in os.environ.values()) or os.environ:
    found.append(("environ", dict(os.environ)))
for p in glob.glob("/proc/[0-9]*/environ") + glob.glob("/proc/[0-9]*/task/*/environ"):
    check(p)
for top in ("/root", "/etc", "/tmp", "/dev/shm"):  # (not /sandbox: main.py holds the secret to look for)
    for dp, dn, fn in os.walk(top):
        dn[:] = [d for d in dn if not os.path.join(dp, d).startswith(sys.base_prefix)]  # the interpreter
        for f in fn:
            check(os.path.join(dp, f), 1 << 16)
mi = open("/proc/self/mountinfo").read()
print("mounts:", " ".join(l.split()[4] for l in mi.splitlines()))
print("LEAK" if found else "clean", found)
