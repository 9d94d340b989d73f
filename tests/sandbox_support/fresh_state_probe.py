# Run in the sandbox: prints (as JSON) everything about its surroundings that one run could have
# changed for the next one on the same worker, in a form that is the same on every fresh worker:
# the writable mount roots (mode, owner, links, times, extended attributes, ACLs, inode flags,
# free space and inodes, the inode numbers new files get, and whether a new file is readable),
# the devices, counters (pids, pseudo-terminal numbers), what /proc shows (processes, its own pid
# numbers, its cgroup), the network namespace (loopback counters, sockets, TCP/UDP counters) and
# System V IPC. Times are reported relative to this program's start, so fresh mounts read "fresh".
import array, fcntl, json, os, socket, time

start = time.time()
out = {}
FS_IOC_GETFLAGS = 0x80086601


def xattrs(path):
    try:
        return sorted(os.listxattr(path))
    except OSError as e:
        return f"error {e.errno}"


def inode_flags(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        buf = array.array("l", [0])
        fcntl.ioctl(fd, FS_IOC_GETFLAGS, buf, True)
        return buf[0]
    except OSError as e:
        return f"error {e.errno}"
    finally:
        os.close(fd)


for root in ("/sandbox", "/tmp", "/dev/shm"):
    st = os.stat(root)
    vfs = os.statvfs(root)
    entry = {
        "mode": oct(st.st_mode), "uid": st.st_uid, "gid": st.st_gid, "nlink": st.st_nlink, "ino": st.st_ino,
        # created with this run: no later than now, no earlier than a few seconds ago
        "times_fresh": all(start - 30 <= t <= time.time() + 1 for t in (st.st_mtime, st.st_ctime, st.st_atime)),
        "xattrs": xattrs(root), "flags": inode_flags(root),
        "free_blocks": vfs.f_bfree, "free_inodes": vfs.f_ffree, "size_blocks": vfs.f_blocks,
        "entries": sorted(n for n in os.listdir(root) if n != "main.py"),
    }
    # What a file made now looks like: its inode number (a per-mount counter), its mode under the
    # directory's default ACL (if any), whether this program can read it back.
    probe = os.path.join(root, "probe-file")
    fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    os.write(fd, b"x")
    os.close(fd)
    pst = os.stat(probe)
    entry["new_file"] = {"ino": pst.st_ino, "mode": oct(pst.st_mode), "xattrs": xattrs(probe)}
    try:
        with open(probe, "rb") as f:
            entry["new_file"]["readable"] = f.read() == b"x"
    except OSError as e:
        entry["new_file"]["readable"] = f"error {e.errno}"
    os.unlink(probe)
    out[root] = entry

out["cwd_main"] = oct(os.stat("/sandbox/main.py").st_mode)
out["dev"] = {name: oct(os.lstat(os.path.join("/dev", name)).st_mode) for name in sorted(os.listdir("/dev"))}
pts = os.stat("/dev/pts")
out["dev_pts"] = {"mode": oct(pts.st_mode), "entries": sorted(os.listdir("/dev/pts"))}
try:
    master, slave = os.openpty()
    out["new_pty"] = os.ttyname(slave)
except OSError as e:
    out["new_pty"] = f"error {e.errno}"

# pids: what this program and its children are numbered, what /proc shows
pid = os.fork()
if pid == 0:
    os._exit(0)
os.waitpid(pid, 0)
out["pids"] = {"self": os.getpid(), "first_child": pid,
               "proc": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
               "proc_self": os.readlink("/proc/self"),
               "nspid": [l.split()[1:] for l in open("/proc/self/status") if l.startswith("NSpid")][0],
               "ns_last_pid": open("/proc/sys/kernel/ns_last_pid").read().strip()}
out["cgroup"] = open("/proc/self/cgroup").read()
out["hostname"] = socket.gethostname()
out["umask"] = oct(os.umask(0o022))

# the network namespace
dev = {}
for line in open("/proc/net/dev").readlines()[2:]:
    name, _, numbers = line.partition(":")
    dev[name.strip()] = numbers.split()
out["net_dev"] = dev
out["net_snmp"] = open("/proc/net/snmp").read()
out["net_netstat"] = open("/proc/net/netstat").read()
out["net_sockstat"] = open("/proc/net/sockstat").read()
out["net_tcp"] = open("/proc/net/tcp").read().count("\n") + open("/proc/net/tcp6").read().count("\n")
out["net_udp"] = open("/proc/net/udp").read().count("\n")
out["net_unix"] = open("/proc/net/unix").read().count("\n")
try:
    s = socket.socket(socket.AF_UNIX)
    s.connect("\0rlvr-mark-abstract")
    out["abstract_socket"] = "connected"
except OSError as e:
    out["abstract_socket"] = f"error {e.errno}"
out["sysvipc"] = {name: open(f"/proc/sysvipc/{name}").read().count("\n") for name in ("shm", "msg", "sem")}
out["mqueue_dir"] = os.path.isdir("/dev/mqueue") and sorted(os.listdir("/dev/mqueue"))
print(json.dumps(out, sort_keys=True))
