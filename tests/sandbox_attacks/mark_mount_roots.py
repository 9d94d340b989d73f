# expect: ok
# Leaves its mark on the roots of its writable mounts, which it owns: modes, times, extended
# attributes, a default ACL that makes every file created there later unreadable (sabotage of the
# next, honest run), an access ACL, inode flags; and the tmpfs inode counters (thousands of files
# made and removed), a FIFO and a full-ish disk. It prints which marks took; the next program on
# the same worker must see none of them (tests/test_sandbox_fresh_state.py).
import array, fcntl, os, struct

FS_IOC_GETFLAGS, FS_IOC_SETFLAGS = 0x80086601, 0x40086602
FS_NODUMP_FL, FS_NOATIME_FL = 0x40, 0x80


def acl(*entries):  # the kernel's posix ACL xattr format: version 2, then (tag, perm, id) entries
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", tag, perm, 0xFFFFFFFF) for tag, perm in entries)


NOTHING = acl((0x01, 0), (0x04, 0), (0x20, 0))  # ACL_USER_OBJ, ACL_GROUP_OBJ, ACL_OTHER: no rights
took = set()
for root in ("/sandbox", "/tmp", "/dev/shm"):
    for name, action in [
        ("xattr", lambda: os.setxattr(root, "user.rlvr-mark", b"{{MARKER}}")),
        ("default_acl", lambda: os.setxattr(root, "system.posix_acl_default", NOTHING)),
        ("inode_flags", lambda: fcntl.ioctl(os.open(root, os.O_RDONLY | os.O_DIRECTORY), FS_IOC_SETFLAGS,
                                            array.array("l", [FS_NODUMP_FL | FS_NOATIME_FL]))),
        ("inodes", lambda: [os.unlink(os.path.join(root, f"f{i}")) for i in range(3000)
                            if not os.close(os.open(os.path.join(root, f"f{i}"), os.O_CREAT | os.O_WRONLY))]),
        ("fifo", lambda: os.mkfifo(os.path.join(root, "fifo"))),
        ("filled", lambda: open(os.path.join(root, "fill"), "wb").write(b"\0" * (8 << 20))),
        ("times", lambda: os.utime(root, (4102444800, 4102444800))),  # 2100-01-01
        ("mode", lambda: os.chmod(root, 0o500)),
    ]:
        try:
            action()
            took.add(name)
        except OSError as e:
            print(root, name, "failed:", e)
try:  # an access ACL on the working dir as well (after the default one, so that it keeps the rights)
    os.setxattr("/dev/shm", "system.posix_acl_access", acl((0x01, 7), (0x04, 0), (0x20, 0)))
    took.add("access_acl")
except OSError as e:
    print("access acl failed:", e)
print("marks:", " ".join(sorted(took)))
