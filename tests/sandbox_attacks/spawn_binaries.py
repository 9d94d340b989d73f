# expect: ok
# Runs other programs: shells, setuid and file-capability binaries (su, sudo, mount, ping, passwd,
# newuidmap), unshare/nsenter; none may gain a privilege or reach outside.
import os, shutil, subprocess
wins = []
def run(argv, **kw):
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=1.5, stdin=subprocess.DEVNULL, **kw)
    except (OSError, subprocess.SubprocessError) as e:
        return None
r = run(["/bin/sh", "-c", "id -u; echo $HOME; cat /etc/shadow 2>&1 | head -c 100; ls / ; echo {{SECRET}} | wc -c"])
print("sh:", r and r.stdout.replace("\n", " | "))
if r and "root:" in r.stdout:
    wins.append("shadow via sh")
for argv in (["su", "-c", "id -u"], ["sudo", "-n", "id", "-u"], ["mount", "-t", "tmpfs", "x", "/tmp"],
             ["ping", "-c", "1", "-W", "1", "127.0.0.1"], ["newuidmap", "1", "0", "0", "1"],
             ["unshare", "-r", "id", "-u"], ["unshare", "-U", "-r", "true"], ["nsenter", "-t", "1", "-a", "id"],
             ["chroot", "/", "id"], ["setpriv", "--reuid=0", "id", "-u"], ["capsh", "--print"],
             ["python3", "-c", "import os; print(os.getuid())"], ["busybox", "id"], ["pkexec", "id"]):
    path = shutil.which(argv[0])
    if not path:
        continue
    st = os.stat(path)
    r = run(argv)
    out = (r.stdout.strip() if r else "")[:80]
    print(argv[0], "suid" if st.st_mode & 0o4000 else "", "rc", r and r.returncode, repr(out))
    if r and r.returncode == 0 and argv[0] in ("su", "sudo", "mount", "newuidmap", "unshare", "chroot",
                                              "setpriv", "pkexec"):
        wins.append(argv[0])
    if r and (out.splitlines()[:1] == ["0"] or "uid=0" in out):
        wins.append(argv[0] + " as root")
print("ESCAPED" if wins else "blocked", wins)
