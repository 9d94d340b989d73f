"""The worker ("zygote") that runs INSIDE the sandbox.

This file is not imported by the trusted side: its source, after _protocol.py's, is handed to
a fresh interpreter (``python -I -S -B -c BOOTSTRAP MODE CTRL_FD WORKDIR UID FRESH DISK_MB INODES
PRELOAD IMPORT_PATHS``, see isolation.py) inside bubblewrap (or, with the explicitly unsafe isolation ``none``, directly on the host). It uses
the standard library only - and as little of it as it can, because everything the zygote has in
memory is copied into (and torn down from) every program's process.

Design ("ns" mode, inside bwrap, where the zygote is pid 1 and holds CAP_SYS_ADMIN in the
sandbox's own user namespace, nothing more):
  * at start: a mount namespace of its own (private mounts) and a network namespace of its own; a
    seccomp filter (inherited by every program); interpreter warm-up; gc.freeze().
  * per job: one clone(CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS) creates the
    program's process X, pid 1 of a new pid namespace. X joins the worker's run cgroup (when
    there is one), mounts fresh tmpfs on /sandbox, /tmp and /dev/shm, a fresh devpts and a fresh
    /proc (of its own pid namespace), copies main.py in with sendfile (the zygote never reads a
    program), sets its rlimits, drops every capability, writes SETUP_OK and runs the program
    (in-process by default, or by exec of the interpreter). The zygote enforces the deadline and
    the memory limit and obeys kill requests. When X is gone, everything of the run is gone with
    it: the kernel kills what is left in its pid namespace (setsid daemons included), and its
    mounts die with their last process. If the program made a network socket, the zygote moves to
    a fresh network namespace before the next job. The next program starts from state the last
    one could not have touched, not from state that was cleaned.

The messages on the control socket are built and read by _protocol.py, whose source precedes
this file's in the zygote's code (JobHeader, Done, encode_*/decode_*).
"""

# Defined by _protocol.py, whose source precedes this one: NamedTuple, JobHeader, Done, OP_*,
# KILLED_*, encode_text, encode_ready, decode_kill, read_files_payload.
import ctypes
import errno
import gc
import os
import resource
import select
import struct
import sys
import time
import _signal
import _socket

(MODE, CTRL_FD, WORKDIR, SANDBOX_ID, FRESH, DEFAULT_DISK_MB, INODES, PRELOAD, IMPORT_PATHS, CGROUP) = (
    sys.argv[1:11] if len(sys.argv) >= 11 else ["ns", "3", "/sandbox", "65534", "0", "64", "16384", "", "", ""])
# Read-only directories (bound at the same path) whose packages programs and PRELOAD may import.
sys.path.extend(p for p in IMPORT_PATHS.split(os.pathsep) if p)
CTRL_FD, SANDBOX_ID, DEFAULT_DISK_MB, INODES = int(CTRL_FD), int(SANDBOX_ID), int(DEFAULT_DISK_MB), int(INODES)
FRESH = FRESH == "1"
# The worker's run cgroup, "procs_fd,...;events_fd" (see cgroups.RunCgroup), or "": none, and the
# memory limit is enforced from /proc instead (over_memory).
CGROUP_PROCS = tuple(int(fd) for fd in CGROUP.partition(";")[0].split(",") if fd)
CGROUP_EVENTS = int(CGROUP.partition(";")[2]) if CGROUP else -1

SETUP_OK = b"S"      # sent on the flag channel (fd 3) once setup is complete, just before program code runs
MEMORY_ERROR = b"M"  # written by the top-level handler on an uncaught MemoryError
SIGINT, SIGKILL, SIGCHLD, SIGPIPE = 2, 9, 17, 13

# --------------------------------------------------------------------------------------------
# Low-level bindings
# --------------------------------------------------------------------------------------------
libc = ctypes.CDLL(None, use_errno=True)
libc_gil = ctypes.PyDLL(None, use_errno=True)  # calls that must keep the GIL (raw clone)

MACHINE = os.uname().machine
if MACHINE == "x86_64":
    SYS = dict(clone=56, clone3=435, ioctl=16, unshare=272, setns=308, pivot_root=155, chroot=161,
               move_mount=429, open_tree=428, fsopen=430, fsconfig=431, fsmount=432, fspick=433,
               mount_setattr=442, keyctl=250, add_key=248, request_key=249, bpf=321,
               perf_event_open=298, userfaultfd=323, io_uring_setup=425, io_uring_enter=426,
               io_uring_register=427, ptrace=101, kexec_load=246, kexec_file_load=320,
               init_module=175, finit_module=313, delete_module=176, acct=163, swapon=167,
               swapoff=168, reboot=169, syslog=103, open_by_handle_at=304, name_to_handle_at=303,
               quotactl=179, vhangup=153, process_vm_writev=311, lookup_dcookie=212,
               capset=126, seccomp=317, gettid=186, socket=41, memfd_create=319, memfd_secret=447,
               shmget=29, msgget=68, semget=64, io_setup=206, inotify_init=253, inotify_init1=294,
               fanotify_init=300, mmap=9, vmsplice=278)
    AUDIT_ARCH = 0xC000003E
elif MACHINE in ("aarch64", "arm64"):
    SYS = dict(clone=220, clone3=435, ioctl=29, unshare=97, setns=268, pivot_root=41, chroot=51,
               move_mount=429, open_tree=428, fsopen=430, fsconfig=431, fsmount=432, fspick=433,
               mount_setattr=442, keyctl=219, add_key=217, request_key=218, bpf=280,
               perf_event_open=241, userfaultfd=282, io_uring_setup=425, io_uring_enter=426,
               io_uring_register=427, ptrace=117, kexec_load=104, kexec_file_load=294,
               init_module=105, finit_module=273, delete_module=106, acct=89, swapon=224,
               swapoff=225, reboot=142, syslog=116, open_by_handle_at=265, name_to_handle_at=264,
               quotactl=60, vhangup=58, process_vm_writev=271, lookup_dcookie=18,
               capset=91, seccomp=277, gettid=178, socket=198, memfd_create=279, memfd_secret=447,
               shmget=194, msgget=186, semget=190, io_setup=0, inotify_init1=26, fanotify_init=262,
               mmap=222, vmsplice=75)
    AUDIT_ARCH = 0xC00000B7
else:  # other architectures: no seccomp layer, no raw clone (the slower fork path is used)
    SYS = {}
    AUDIT_ARCH = None

CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC = 0x20000, 0x2000000, 0x4000000, 0x8000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWTIME = 0x10000000, 0x20000000, 0x40000000, 0x80
CLONE_PIDFD = 0x1000
# Per program: new pid (pid 1 kills everything on exit), mount (fresh mounts that die with the
# run), ipc (no SysV/mqueue leftovers) and uts namespaces. The network namespace is the worker's,
# replaced by a fresh one after every program that made a network socket (see NET_USED).
NS_FLAGS = CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS
# Never allowed after start-up, for anyone: a new user namespace would give a program
# capabilities; the others are not needed and widen the kernel's surface. (The namespaces in
# NS_FLAGS, and cgroup namespaces, need CAP_SYS_ADMIN, which programs never hold.)
FORBIDDEN_NS = CLONE_NEWUSER | CLONE_NEWTIME

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = (
    1, 2, 4, 8, 32, 4096, 16384, 1 << 18)
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_CAPBSET_DROP, PR_SET_SECCOMP = 1, 4, 24, 22
PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT = 36, 38, 47
TIOCSTI, TIOCLINUX = 0x5412, 0x541C

libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
libc.pthread_self.restype = ctypes.c_void_p
libc_gil.syscall.restype = ctypes.c_long


def _check(ret, what):
    if ret != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"{what}: {os.strerror(e)}")


def prctl(option, arg2=0, arg3=0, arg4=0, arg5=0, what="prctl"):
    _check(libc.prctl(option, arg2, arg3, arg4, arg5), what)


def mount(source, target, fstype, flags, data=None):
    _check(libc.mount(source and source.encode(), target.encode(), fstype and fstype.encode(),
                      flags, data and data.encode()), f"mount {fstype or ''} on {target}")


def format_exc():
    import traceback  # only on error paths: the zygote stays small
    return traceback.format_exc(limit=6)


# --- raw clone -------------------------------------------------------------------------------
TID_OFFSET = None  # where this C library keeps the calling thread's tid in its thread descriptor


def gettid():
    return libc.syscall(SYS["gettid"])


def calibrate_tid_offset():
    """Find the tid field of glibc's thread descriptor, so a raw clone() child can fix it.

    fork() in the C library updates that field in the child; a raw clone syscall does not, and a
    stale value would confuse raise(), pthread_kill() and recursive locks. The field is the offset
    that holds our tid here and, in a fork()ed child, the child's tid. None if not unambiguous.
    """
    base = libc.pthread_self()
    tid = gettid()
    if not base or tid <= 0:
        return None
    cands = [off for off in range(0, 1024, 4) if ctypes.c_int.from_address(base + off).value == tid]
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        new = gettid()
        found = [off for off in cands if ctypes.c_int.from_address(base + off).value == new]
        os.write(w, ",".join(map(str, found)).encode())
        os._exit(0)
    os.close(w)
    raw = read_all(r)
    os.close(r)
    os.waitpid(pid, 0)
    found = [int(x) for x in raw.split(b",") if x]
    return found[0] if len(found) == 1 else None


_pidfd_box = ctypes.c_int(-1)
_ZERO = ctypes.c_ulong(0)
_CLONE_ARGS = {}
USE_CLONE_PIDFD = True
TID_CELL = None  # ctypes view of the tid field, set once TID_OFFSET is known
from _thread import get_native_id  # noqa: E402  (the gettid syscall)


def clone_fork(flags):
    """fork() that also creates new namespaces for the child (pid 1 of a new pid namespace).

    The raw clone syscall; the child then corrects the C library's cached tid. The interpreter's
    fork hooks (PyOS_BeforeFork/AfterFork_*) are not needed: they re-initialise locks that other
    threads might hold, and the zygote never has another thread (checked at start-up), holds no
    lock here and registers no at-fork callbacks. Returns (pid, pidfd or None); (0, None) in the
    child.
    """
    global USE_CLONE_PIDFD
    extra = CLONE_PIDFD if USE_CLONE_PIDFD else 0
    args = _CLONE_ARGS.get(flags | extra)
    if args is None:  # built once: the fewer objects made per call, the fewer pages copied
        args = _CLONE_ARGS[flags | extra] = (ctypes.c_long(SYS["clone"]), ctypes.c_ulong(flags | extra | SIGCHLD),
                                             _ZERO, ctypes.byref(_pidfd_box), _ZERO, _ZERO)
    pid = libc_gil.syscall(*args)
    if pid == 0:
        TID_CELL.value = get_native_id()  # the C library's cached tid, for this new thread
        return 0, None
    err = ctypes.get_errno()
    if pid < 0:
        if extra and err == errno.EINVAL:  # kernel without CLONE_PIDFD (< 5.2)
            USE_CLONE_PIDFD = False
            return clone_fork(flags)
        raise OSError(err, f"clone: {os.strerror(err)}")
    return pid, (_pidfd_box.value if extra else None)


# --- capabilities ---------------------------------------------------------------------------
class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


_CAP_HEADER = _CapHeader(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3
_CAP_DATA = (_CapData * 2)()              # all zero: no capability at all
_CAP_HEADER_REF, _CAP_DATA_REF = ctypes.byref(_CAP_HEADER), ctypes.byref(_CAP_DATA)


def _cap_eff():
    with open("/proc/self/status", "rb") as f:
        for line in f:
            if line.startswith(b"CapEff:"):
                return int(line.split()[1], 16)
    return 0


def drop_capabilities():
    """Empty the ambient, effective, permitted and inheritable capability sets (and the
    bounding set when we may)."""
    if HAVE_SETPCAP:
        for cap in range(64):
            if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
                break
    # (The ambient set empties itself when the permitted and inheritable sets are emptied.)
    _check(libc.syscall(SYS["capset"], _CAP_HEADER_REF, _CAP_DATA_REF), "capset")


# --- seccomp -------------------------------------------------------------------------------
BPF_LD_W_ABS, BPF_JEQ, BPF_JGE, BPF_JSET, BPF_RET = 0x20, 0x15, 0x35, 0x45, 0x06
RET_ALLOW, RET_KILL_PROCESS = 0x7FFF0000, 0x80000000
RET_EPERM = 0x00050000 | errno.EPERM
RET_ENOSYS = 0x00050000 | errno.ENOSYS
RET_EAFNOSUPPORT = 0x00050000 | errno.EAFNOSUPPORT
AF_UNIX, AF_INET, AF_INET6, AF_NETLINK = 1, 2, 10, 16  # the socket families programs get (no vsock, packet...)
RET_USER_NOTIF = 0x7FC00000
BLOCKED = ["setns", "pivot_root", "chroot", "move_mount", "open_tree", "fsopen", "fsconfig",
           "fsmount", "fspick", "mount_setattr", "keyctl", "add_key", "request_key", "bpf",
           "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter",
           "io_uring_register", "ptrace", "kexec_load", "kexec_file_load", "init_module",
           "finit_module", "delete_module", "acct", "swapon", "swapoff", "reboot", "syslog",
           "open_by_handle_at", "name_to_handle_at", "quotactl", "vhangup", "process_vm_writev",
           "lookup_dcookie",
           # Memory that no process maps is in nobody's resident set, so the memory limit cannot see
           # it: memfds (each up to RLIMIT_FSIZE, as many as RLIMIT_NOFILE, in every process) and
           # System V shared memory (kept after detaching), message queues and semaphore arrays
           # (kernel memory, up to what the ipc namespace's default sysctls allow: gigabytes).
           "memfd_create", "memfd_secret", "shmget", "msgget", "semget",
           # Counted per host user or host-wide, whatever namespace the program is in: Linux AIO
           # contexts share one host-wide pool (fs.aio-max-nr: one io_setup() took all of it, and
           # every AIO user on the host failed until the run ended); inotify and fanotify groups
           # count against the host uid's limit (128: one program took them all) and would let a
           # program watch the host's (read-only) files being opened by others.
           "io_setup", "inotify_init", "inotify_init1", "fanotify_init"]
# Without a run cgroup, memory is counted per process from /proc, and pages a program pinned in a
# pipe (vmsplice: a huge page, then unmapped) belong to no process: refused. (In a memory cgroup
# they stay charged to the run, and count.)
BLOCKED_WITHOUT_CGROUP = ["vmsplice"]
MAP_HUGETLB = 0x40000  # huge pages are in no resident set the memory limit reads (nor in RLIMIT_AS's spirit)


def seccomp_program(notify):
    """The filter the zygote installs on itself at start; every program inherits it.

    Denied (EPERM): the syscalls in BLOCKED (and BLOCKED_WITHOUT_CGROUP, when there is no run
    cgroup); clone()/unshare() with a new user (or time) namespace - without a user
    namespace a program can never get a capability;
    TIOCSTI/TIOCLINUX ioctls; mmap() with MAP_HUGETLB. socket() of any family but unix, inet, inet6 and netlink fails
    with EAFNOSUPPORT (vsock, which no network namespace confines, in particular); with ``notify``,
    socket() of inet, inet6 and netlink goes to the zygote first (seccomp user notification: see
    NET_USED), which lets it go on. clone3 answers ENOSYS so the C library falls back to clone().
    mount()/umount2() stay available to the zygote and need CAP_SYS_ADMIN, which programs drop.
    """
    ins = []

    def op(code, k, jt=0, jf=0):
        ins.append((code, jt, jf, k))

    op(BPF_LD_W_ABS, 4)                       # arch
    op(BPF_JEQ, AUDIT_ARCH, 1, 0)
    op(BPF_RET, RET_KILL_PROCESS)
    op(BPF_LD_W_ABS, 0)                       # nr
    if MACHINE == "x86_64":
        op(BPF_JGE, 0x40000000, 0, 1)         # x32 ABI
        op(BPF_RET, RET_EPERM)
    for name in BLOCKED + ([] if CGROUP_PROCS else BLOCKED_WITHOUT_CGROUP):
        if name in SYS:  # (inotify_init exists on x86_64 only)
            op(BPF_JEQ, SYS[name], 0, 1)
            op(BPF_RET, RET_EPERM)
    op(BPF_JEQ, SYS["clone3"], 0, 1)
    op(BPF_RET, RET_ENOSYS)
    for name in ("clone", "unshare"):
        op(BPF_JEQ, SYS[name], 0, 3)
        op(BPF_LD_W_ABS, 16)                  # args[0] (flags), low 32 bits
        op(BPF_JSET, FORBIDDEN_NS, 0, 1)
        op(BPF_RET, RET_EPERM)
        op(BPF_LD_W_ABS, 0)
    op(BPF_JEQ, SYS["socket"], 0, 7)          # socket(): only unix, inet, inet6, netlink
    op(BPF_LD_W_ABS, 16)                      # args[0] (domain)
    op(BPF_JEQ, AF_UNIX, 5, 0)                # unix: go on
    op(BPF_JEQ, AF_INET, 2, 0)                # the families that use the network namespace:
    op(BPF_JEQ, AF_INET6, 1, 0)               # the zygote hears of them
    op(BPF_JEQ, AF_NETLINK, 0, 1)
    op(BPF_RET, RET_USER_NOTIF if notify else RET_ALLOW)
    op(BPF_RET, RET_EAFNOSUPPORT)
    op(BPF_LD_W_ABS, 0)
    op(BPF_JEQ, SYS["mmap"], 0, 3)            # mmap(MAP_HUGETLB)
    op(BPF_LD_W_ABS, 40)                      # args[3] (flags), low 32 bits
    op(BPF_JSET, MAP_HUGETLB, 0, 1)
    op(BPF_RET, RET_EPERM)
    op(BPF_LD_W_ABS, 0)
    op(BPF_JEQ, SYS["ioctl"], 0, 4)
    op(BPF_LD_W_ABS, 24)                      # args[1] (request), low 32 bits
    op(BPF_JEQ, TIOCSTI, 1, 0)
    op(BPF_JEQ, TIOCLINUX, 0, 1)
    op(BPF_RET, RET_EPERM)
    op(BPF_RET, RET_ALLOW)
    return ins


class _FProg(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def install_seccomp():
    """Load the filter (no_new_privs first, as the kernel requires).

    SPEC_ALLOW: do not also turn on the speculative-store-bypass mitigation, which would slow the
    interpreter down severalfold and protects nothing here (it guards a process's memory against
    the same process). In ns mode, on kernels that can answer a notification with "go on"
    (SECCOMP_USER_NOTIF_FLAG_CONTINUE, Linux 5.5), also ask for a listener (FLAG_NEW_LISTENER), on
    which the zygote hears of the programs' network sockets (see NET_USED).
    """
    global LISTENER
    if AUDIT_ARCH is None:
        return
    prctl(PR_SET_NO_NEW_PRIVS, 1, what="no_new_privs")
    release = tuple(int(x) for x in os.uname().release.split("-")[0].split(".")[:2] if x.isdigit())
    notify = MODE == "ns" and release >= (5, 5)
    prog = seccomp_program(notify)
    buf = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *i) for i in prog))
    fprog = _FProg(len(prog), ctypes.cast(buf, ctypes.c_void_p))
    listener = 8 if notify else 0  # SECCOMP_FILTER_FLAG_NEW_LISTENER
    ret = libc.syscall(SYS["seccomp"], 1, 4 | listener, ctypes.byref(fprog))  # SET_MODE_FILTER, SPEC_ALLOW
    if ret < 0 and ctypes.get_errno() == errno.EINVAL:  # kernel < 4.17: no SPEC_ALLOW
        ret = libc.syscall(SYS["seccomp"], 1, listener, ctypes.byref(fprog))
    if ret < 0:
        _check(ret, "seccomp")
    LISTENER = ret if notify else -1


# --------------------------------------------------------------------------------------------
# Messages and small helpers
# --------------------------------------------------------------------------------------------
ctrl = _socket.socket(_socket.AF_UNIX, _socket.SOCK_SEQPACKET, 0, CTRL_FD)
_ANC_SPACE = _socket.CMSG_SPACE(8 * 4)


def recv_msg():
    """(bytes, [fds]) of the next message from the parent; (b"", []) when it is gone."""
    data, anc, _flags, _addr = ctrl.recvmsg(65536, _ANC_SPACE)
    fds = []
    for level, kind, payload in anc:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            n = len(payload) // 4
            fds.extend(struct.unpack(f"{n}i", payload[:n * 4]))
    return data, fds


def send_text(op, text):
    ctrl.send(encode_text(op, text))


def write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def socketpair_fds():
    """(our end, X's end) of a unix stream socket pair, as plain non-inheritable fds."""
    a, b = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
    return a.detach(), b.detach()


def read_all(fd):
    chunks = []
    while True:
        b = os.read(fd, 65536)
        if not b:
            return b"".join(chunks)
        chunks.append(b)


# --------------------------------------------------------------------------------------------
# X: the program's process
# --------------------------------------------------------------------------------------------
def program_process(plan, fds, flag_w):
    """Set up the freshly created process and run the program in it. Never returns.

    Kept to few, simple calls: every object this touches is a page copied (copy-on-write) from
    the zygote, which is most of a run's cost. Anything that fails before SETUP_OK is written is a
    sandbox failure, reported as such.
    """
    payload_fd, stdin_fd, out_fd, err_fd = fds
    try:
        if MODE == "ns":
            if CGROUP_PROCS:
                join_run_cgroup()
            fresh_run_state(plan.mounts)
            libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)  # the program may read its own /proc/self
        # A session (and process group) of its own: otherwise the program shares the zygote's,
        # and kill(0, SIGINT) / killpg(0, ...) would reach the zygote itself.
        os.setsid()
        _signal.signal(SIGINT, _signal.default_int_handler)  # as `python main.py` has it
        if plan.has_files:
            source = write_files(plan.workdir, read_all(payload_fd))
        else:
            if MODE == "ns":
                copy_program(payload_fd, plan.program_size, plan.main_path)
            source = os.pread(payload_fd, plan.program_size, 0)
        os.dup2(stdin_fd, 0)
        os.dup2(out_fd, 1)
        os.dup2(err_fd, 2)
        os.dup2(flag_w, 3, inheritable=False)
        os.closerange(4, 1 << 20)
        setrlimit = resource.setrlimit
        for res, soft, hard in plan.rlimits:
            setrlimit(res, (soft, hard))
        os.chdir(plan.workdir)
        os.umask(0o022)
        fd = os.open("/proc/self/oom_score_adj", os.O_WRONLY)  # if memory runs out, kill programs first
        os.write(fd, b"1000")
        os.close(fd)
        if MODE == "ns":
            drop_capabilities()
        elif os.geteuid() == 0 and SANDBOX_ID >= 0:  # unsafe mode started as root: at least stop being root
            os.setgroups([])
            os.setresgid(SANDBOX_ID, SANDBOX_ID, SANDBOX_ID)
            os.setresuid(SANDBOX_ID, SANDBOX_ID, SANDBOX_ID)
        os.write(3, SETUP_OK)
    except BaseException:
        try:
            os.write(flag_w, b"E" + format_exc().encode()[-4000:])
        except BaseException:
            pass
        os._exit(125)
    # ---- from here on, everything is the program's doing ----
    try:
        if FRESH:
            os.execve(sys.executable, [sys.executable, "-E", "-s", "main.py"], {})
        code = run_in_process(source, plan.main_path)
    except BaseException:
        code = 1
    os._exit(code)


def write_files(workdir, payload):
    """The slow path, for jobs with extra files (a files_payload): returns the program's source."""
    source = b""
    for i, (name, content) in enumerate(read_files_payload(payload)):
        if i == 0:
            source = content
        path = os.path.normpath(os.path.join(workdir, name))
        if not path.startswith(workdir + "/"):
            raise ValueError(f"file name escapes the working dir: {name!r}")
        parent = os.path.dirname(path)
        if parent != workdir:
            os.makedirs(parent, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
        try:
            write_all(fd, content)
        finally:
            os.close(fd)
    return source


def run_in_process(source, main_path):
    """Behave like `python main.py` as closely as possible, in this (forked) interpreter.

    The interpreter's own std streams are reused: fds 0-2 now are the program's, and the zygote
    never read or wrote them (UTF-8 mode: utf-8/surrogateescape, stdout block-buffered).
    """
    mod = ModuleType("__main__")
    mod.__file__ = main_path
    mod.__builtins__ = __builtins__
    mod.__cached__ = None
    sys.modules["__main__"] = mod
    sys.argv[:] = ARGV
    sys.path[:] = [main_path[:-8]] + STDLIB_PATH  # the script's dir first, as for `python main.py`
    code = 0
    try:
        compiled = compile(source, main_path, "exec", dont_inherit=True)
        del source
        exec(compiled, mod.__dict__)
    except SystemExit as e:
        code = _exit_code(e)
    except BaseException as e:  # uncaught exception: print it like the interpreter does
        if isinstance(e, MemoryError):
            try:
                os.write(3, MEMORY_ERROR)
            except OSError:
                pass
        code = 1
        try:
            tb = e.__traceback__
            if tb is not None and tb.tb_frame.f_code is RUN_CODE:
                tb = tb.tb_next  # hide this function's frame, as the interpreter has none
                e.__traceback__ = tb
            sys.excepthook(type(e), e, tb)
        except BaseException:
            pass
    threading = sys.modules.get("threading")
    if threading is not None:
        try:
            threading._shutdown()  # wait for non-daemon threads, as interpreter exit does
        except SystemExit as e:
            code = _exit_code(e)
        except BaseException:
            pass
    try:
        run_exitfuncs()
    except BaseException:
        pass
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except BaseException:
            if stream is sys.stdout and code == 0:
                code = 120
    # As at interpreter shutdown: the program's objects are finalized (open files get flushed
    # and closed, __del__ methods run), then the std streams are flushed once more.
    try:
        mod.__dict__.clear()
        gc.collect()
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:
        pass
    return code


def _exit_code(e):
    c = e.code
    if c is None:
        return 0
    if isinstance(c, bool) or not isinstance(c, int):
        try:
            sys.stderr.write(str(c) + "\n")
        except BaseException:
            pass
        return 1
    return c & 0xFF


# --------------------------------------------------------------------------------------------
# Creating the program's process
# --------------------------------------------------------------------------------------------
def spawn(plan, fds, flag_w):
    """Start the program's process X; return (pid in our pid namespace, pidfd or None)."""
    if MODE != "ns":
        pid = os.fork()
        if pid == 0:
            program_process(plan, fds, flag_w)
        return pid, None
    if TID_OFFSET is not None:
        pid, pidfd = clone_fork(NS_FLAGS)
        if pid == 0:
            program_process(plan, fds, flag_w)
        return pid, pidfd
    # Fallback: a short-lived helper C creates the namespaces and forks X with a normal fork;
    # X is then re-parented to us (pid 1 of the worker, and a subreaper).
    r, w = os.pipe()
    c = os.fork()
    if c == 0:
        try:
            os.close(r)
            _check(libc.unshare(NS_FLAGS), "unshare")
            x = os.fork()
            if x == 0:
                os.close(w)
                program_process(plan, fds, flag_w)
            os.write(w, str(x).encode())
            os._exit(0)
        except BaseException:
            try:
                os.write(flag_w, b"E" + format_exc().encode()[-4000:])
            except BaseException:
                pass
            os._exit(126)
    os.close(w)
    raw = read_all(r)
    os.close(r)
    os.waitpid(c, 0)
    if not raw:
        raise OSError(errno.ECHILD, "the namespace helper failed")
    return int(raw), None


# --- the run's own mounts and network (ns mode) ----------------------------------------------
WRITABLE = [(WORKDIR, 0o755), ("/tmp", 0o1777), ("/dev/shm", 0o1777)]
PTY_MAX = 16  # pseudo-terminals a run may hold at once
# Read-only over a run's fresh /proc, as bwrap has it: the kernel's knobs. (Besides, every file
# there belongs to the host's root, and programs hold no capability in any namespace. The other
# parts bwrap covers - sysrq-trigger, irq, bus - are writable by the host's root only.)
PROC_COVERED = ("/proc/sys",)
SIOCSIFFLAGS, IFF_UP, IFF_LOOPBACK, IFF_RUNNING = 0x8914, 0x1, 0x8, 0x40
_LO_UP = ctypes.create_string_buffer(struct.pack("16sH", b"lo", IFF_UP | IFF_LOOPBACK | IFF_RUNNING), 40)
libc.ioctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p]


def tmpfs_options(disk_mb, mode):
    return f"size={disk_mb}m,nr_inodes={INODES},mode={mode:o}"


_MOUNT_PLANS = {}


def run_mounts(disk_mb):
    """The mount(2) calls that give a run its own state, as bytes ready for libc (built once per
    size, in the zygote: X only loops over them):

    * tmpfs on the working dir, /tmp and /dev/shm (their roots are the run's own: modes, times,
      ACLs, extended attributes and inode numbers start afresh);
    * a devpts instance holding at most PTY_MAX terminals (the kernel's count of pseudo-terminals
      is host-wide - kernel.pty.max, 4096, 1024 of them reserved for the host - and one program
      that opened /dev/ptmx in every process took all that containers and sandboxes share);
    * /proc of the run's own pid namespace: it lists the run's processes only, and the pid numbers
      of the worker's namespace (which counted the worker's earlier runs) appear nowhere in it;
      /proc/sys read-only.
    """
    plan = _MOUNT_PLANS.get(disk_mb)
    if plan is not None:
        return plan
    calls = [(b"tmpfs", path.encode(), b"tmpfs", MS_NOSUID | MS_NODEV, tmpfs_options(disk_mb, mode).encode())
             for path, mode in WRITABLE if os.path.isdir(path)]
    if os.path.isdir("/dev/pts"):
        calls.append((b"devpts", b"/dev/pts", b"devpts", MS_NOSUID | MS_NOEXEC,
                      f"newinstance,ptmxmode=0666,mode=620,max={PTY_MAX}".encode()))
    calls.append((b"proc", b"/proc", b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None))
    for path in PROC_COVERED:
        if os.path.exists(path):
            calls.append((path.encode(), path.encode(), None, MS_BIND | MS_REC, None))
            calls.append((None, path.encode(), None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV
                          | MS_NOEXEC, None))
    plan = _MOUNT_PLANS[disk_mb] = tuple(calls)
    return plan


def join_run_cgroup():
    """In X, first of all: move into the worker's run cgroup, so that everything the run makes
    the kernel hold is charged there; then a cgroup namespace rooted there, so that the program
    sees its cgroup as "/" (not the caller's pid, nor the worker's number)."""
    for fd in CGROUP_PROCS:
        os.write(fd, b"0")
    _check(libc.unshare(CLONE_NEWCGROUP), "unshare(CLONE_NEWCGROUP)")


def fresh_run_state(mounts):
    """In X, before anything of the program: its own mounts (see run_mounts). Needs
    CAP_SYS_ADMIN in the sandbox's user namespace, which X drops afterwards."""
    for source, target, fstype, flags, data in mounts:
        if libc.mount(source, target, fstype, flags, data) != 0:
            e = ctypes.get_errno()
            raise OSError(e, f"mount {(fstype or b'bind').decode()} on {target.decode()}: {os.strerror(e)}")


# --- the network namespace (ns mode) ---------------------------------------------------------
# A network namespace costs the kernel ~1-2 ms of CPU to make and tear down: as much as the rest of
# a short program's run. So programs share the worker's, as long as none has used it: every
# socket() of a family that lives in it (inet, inet6, netlink) reaches the zygote first, through a
# seccomp user notification, and sets NET_USED; after such a run the zygote moves to a fresh
# network namespace, so the next program never sees the last one's connections, ports, counters
# or abstract sockets. (Unix sockets: abstract names die with their sockets, which die with the
# run, except those kept in flight: see collect_inflight_sockets.)
LISTENER = -1      # the seccomp listener; -1: none (old kernel): a fresh namespace after every run
NET_USED = False   # a program made a network socket since the zygote's namespace was made
SECCOMP_IOCTL_NOTIF_RECV, SECCOMP_IOCTL_NOTIF_SEND = 0xC0502100, 0xC0182101
SECCOMP_USER_NOTIF_FLAG_CONTINUE = 1
_NOTIF = ctypes.create_string_buffer(80)   # struct seccomp_notif
_NOTIF_RESP = ctypes.create_string_buffer(24)  # struct seccomp_notif_resp


def answer_network_notification():
    """A program is making a network socket: let the call go on, and remember it."""
    global NET_USED
    NET_USED = True
    ctypes.memset(_NOTIF, 0, 80)  # (the kernel wants it zeroed)
    if libc.ioctl(LISTENER, SECCOMP_IOCTL_NOTIF_RECV, _NOTIF) != 0:
        return  # (the caller is gone meanwhile)
    struct.pack_into("<QqiI", _NOTIF_RESP, 0, struct.unpack_from("<Q", _NOTIF, 0)[0], 0, 0,
                     SECCOMP_USER_NOTIF_FLAG_CONTINUE)
    libc.ioctl(LISTENER, SECCOMP_IOCTL_NOTIF_SEND, _NOTIF_RESP)  # (ENOENT: it died meanwhile)


def fresh_worker_network():
    """Move the zygote (and so every later program) to a new network namespace, loopback up."""
    global NET_USED
    _check(libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")
    s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_DGRAM)  # (any socket serves the interface ioctl)
    try:
        _check(libc.ioctl(s.fileno(), SIOCSIFFLAGS, _LO_UP), "bring the loopback interface up")
    finally:
        s.close()
    NET_USED = False


def unix_sockets_left():
    """Unix sockets in the worker's network namespace. Between programs there are none: the
    zygote's control socket belongs to the caller's namespace, and the flag channel is closed."""
    with open("/proc/net/unix", "rb") as f:
        return f.read().count(b"\n") - 1


def collect_inflight_sockets(timeout=0.2):
    """Make sure no unix socket of the last program outlives it in the shared network namespace.
    All its processes are gone, but sockets it sent to one another (SCM_RIGHTS) and never
    received hold each other "in flight" until the kernel's garbage collector runs -
    asynchronously, often after the next program has started: a socket bound to an abstract
    name was still there for the next program to connect to. Trigger the collector (a socket
    released while others are in flight) and wait for it. False if they are not gone in time."""
    if unix_sockets_left() <= 0:
        return True
    deadline = time.monotonic() + timeout
    while True:
        a, b = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
        try:
            a.sendmsg([b"g"], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, struct.pack("i", b.fileno()))])
        finally:
            a.close()
            b.close()
        for _ in range(5):
            time.sleep(0.002)
            if unix_sockets_left() <= 0:
                return True
        if time.monotonic() >= deadline:
            return False


def setup_mount_namespace():
    """A mount namespace of our own with private mounts: the runs' namespaces are copies of it,
    and what a run mounts must never propagate back."""
    _check(libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    mount(None, "/", None, MS_REC | MS_PRIVATE)


# --------------------------------------------------------------------------------------------
# Supervision (in the zygote)
# --------------------------------------------------------------------------------------------
# (RTPRIO and NICE 0: whatever the caller's limits, no real-time scheduling - a SCHED_FIFO loop
# would starve the host's CPUs, the supervisor included - and no raised priority. SIGPENDING:
# queued signals are counted per host uid, across every sandbox - with the caller's limit, one
# program queued ~100000 real-time signals and left none for any other process of that uid.)
RLIMITS = (resource.RLIMIT_AS, resource.RLIMIT_CPU, resource.RLIMIT_FSIZE, resource.RLIMIT_CORE,
           resource.RLIMIT_NOFILE, resource.RLIMIT_NPROC, resource.RLIMIT_MEMLOCK,
           resource.RLIMIT_MSGQUEUE, resource.RLIMIT_RTPRIO, resource.RLIMIT_NICE, resource.RLIMIT_SIGPENDING)
SIGPENDING_MAX = 1024
HARD_LIMITS = {res: resource.getrlimit(res)[1] for res in RLIMITS}


_RLIMIT_PLANS = {}


def rlimit_plan(memory_mb, cpu, fsize, nofile, nproc):
    key = (memory_mb, cpu, fsize, nofile, nproc)
    plan = _RLIMIT_PLANS.get(key)
    if plan is None:
        plan = _RLIMIT_PLANS[key] = _rlimit_plan(*key)
    return plan


class Plan(NamedTuple):
    """Everything the program's process needs, computed by the zygote (no program data involved)."""

    rlimits: tuple      # (resource, soft, hard) triples
    workdir: str
    main_path: str
    has_files: bool     # the payload is a files_payload, main.py among its files
    program_size: int   # bytes of main.py in the payload, when it is main.py alone
    mounts: tuple       # the run's own mounts (ns mode: see run_mounts)


def job_plan(job, workdir):
    return Plan(rlimit_plan(job.memory_mb, job.cpu_s, job.max_file_bytes, job.max_open_files, job.max_processes),
                workdir, workdir + "/main.py", job.has_files, job.payload_size,
                run_mounts(job.disk_mb) if MODE == "ns" else ())


def _rlimit_plan(memory_mb, cpu, fsize, nofile, nproc):
    rl = []
    for res, soft, hard in zip(RLIMITS, (memory_mb << 20, cpu, fsize, 0, nofile, nproc, 0, 0, 0, 0, SIGPENDING_MAX),
                               (memory_mb << 20, cpu + 1, fsize, 0, nofile, nproc, 0, 0, 0, 0, SIGPENDING_MAX)):
        cur_hard = HARD_LIMITS[res]
        if cur_hard != resource.RLIM_INFINITY:
            hard = min(hard, cur_hard)
            soft = min(soft, hard)
        rl.append((res, soft, hard))
    return tuple(rl)


def copy_program(payload_fd, size, path):
    """main.py from the payload memfd, copied by the kernel: the zygote never reads a program."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    try:
        offset = 0
        while offset < size:
            n = os.sendfile(fd, payload_fd, offset, size - offset)
            if n <= 0:
                raise OSError(errno.EIO, "short copy of the program")
            offset += n
    finally:
        os.close(fd)


def run_job(job, fds):
    """Run one job to completion and send its DONE message."""
    job_id = job.job_id
    workdir = WORKDIR
    error = ""
    state = [None, KILLED_NONE, 0.0, 0]  # wait status, killed, cpu seconds, max rss KiB
    memory_error = False
    try:
        if MODE != "ns":  # (in ns mode, X mounts a fresh working dir and copies main.py in itself)
            import tempfile
            workdir = tempfile.mkdtemp(prefix="rlvr-sandbox-")
            if os.geteuid() == 0 and SANDBOX_ID >= 0:
                os.chown(workdir, SANDBOX_ID, SANDBOX_ID)
        plan = job_plan(job, workdir)
        if MODE != "ns" and not plan.has_files:
            copy_program(fds[0], plan.program_size, plan.main_path)
    except OSError as e:
        plan = None
        error = f"cannot prepare the working dir: {e}"
    pid = None
    # The flag channel is a socket pair, not a pipe: the program holds the write end (fd 3), and
    # a pipe can be re-opened for reading through /proc/self/fd/3 - which would let the program
    # steal the SETUP_OK byte and forge a setup failure (a sandbox_error). A socket cannot be
    # re-opened, and what X sent is queued at our end, out of the program's reach.
    flag_r, flag_w = socketpair_fds()
    if plan is not None:
        try:
            pid, pidfd = spawn(plan, fds, flag_w)
        except OSError as e:
            error = f"could not create the program's process: {e}"
    if pid is not None:
        # Do as little as possible until the program is done: every page the zygote writes
        # while the child lives is a page copied.
        supervise(job_id, job.timeout_s, job.memory_mb, pid, pidfd, state)
    for fd in fds:
        os.close(fd)
    os.close(flag_w)
    os.set_blocking(flag_r, False)
    try:
        out = os.read(flag_r, 8192)
    except OSError:
        out = b""
    os.close(flag_r)
    if out[:1] == SETUP_OK:
        memory_error = out[1:2] == MEMORY_ERROR
    elif not error and state[1] == KILLED_NONE:
        detail = out[1:].decode("utf-8", "replace") if out[:1] == b"E" else ""
        error = f"program setup failed (wait status {state[0]}): {detail}".strip()
    if MODE != "ns":
        cleanup_unsafe(workdir)
    ctrl.send(Done(job_id, state[0], state[1], state[2], state[3], memory_error, error or None).encode())
    if MODE == "ns":
        # After the answer (not the program's time), before the next job.
        if TID_OFFSET is None:
            reap_all()  # (the namespace helpers of the fork+unshare+fork path)
        try:
            if NET_USED or LISTENER < 0:
                fresh_worker_network()
            elif not collect_inflight_sockets():
                raise OSError(errno.EBUSY, "unix sockets of the last program are still in flight")
        except OSError as e:  # this worker must not run another program
            send_text(OP_FATAL, f"cannot give the next program a fresh network namespace: {e}")
            os._exit(1)


def supervise(job_id, timeout_s, memory_mb, pid, pidfd, state):
    """Wait for X; enforce the deadline and the memory limit; obey kill requests."""
    deadline = time.monotonic() + timeout_s
    if pidfd is None:
        pidfd = os.pidfd_open(pid)
    poller = POLLER
    poller.register(pidfd, select.POLLIN)
    interval = 0.01
    killed = KILLED_NONE
    ooms = oom_kills() if CGROUP_PROCS else 0
    next_check = time.monotonic() + interval
    exited = False
    while not exited and not killed:
        now = time.monotonic()
        if now >= deadline:
            killed = KILLED_TIMEOUT
            break
        if now >= next_check:  # (also when events keep coming: they must not put the check off)
            if oom_kills() > ooms if CGROUP_PROCS else over_memory(memory_mb * 1024 * 1024 // PAGE):
                killed = KILLED_MEMORY
                break
            interval = min(interval * 2, 0.05)
            next_check = now + interval
        for fd, _ev in poller.poll((min(deadline, next_check) - now) * 1000):
            if fd == pidfd:
                exited = True
            elif fd == LISTENER:
                answer_network_notification()
            elif fd == CTRL_FD:
                raw = ctrl.recv(65536)
                if not raw or raw[0] == OP_EXIT:  # the trusted parent is gone or wants us to stop
                    kill_job(pid)
                    os._exit(0)
                if decode_kill(raw) == job_id:
                    killed = KILLED_REQUEST
    if killed:
        kill_job(pid)
    poller.unregister(pidfd)
    os.close(pidfd)
    _, status, ru = os.wait4(pid, 0)
    if not killed and CGROUP_PROCS and oom_kills() > ooms:
        killed = KILLED_MEMORY  # (the kernel killed one of its processes, pid 1 perhaps, and it ended)
    state[0] = status
    state[1] = killed
    state[2] = ru.ru_utime + ru.ru_stime
    state[3] = ru.ru_maxrss


def kill_job(pid):
    if MODE == "ns":
        os.kill(pid, SIGKILL)  # pid 1 of the program's namespace: everything in it dies
    else:
        for p in descendants(os.getpid()):
            try:
                os.kill(p, SIGKILL)
            except OSError:
                pass


def oom_kills():
    """How many processes the kernel's OOM killer has killed in the run cgroup (ever)."""
    raw = os.pread(CGROUP_EVENTS, 4096, 0)
    i = raw.find(b"oom_kill ")
    return int(raw[i + 9:raw.index(b"\n", i)]) if i >= 0 else 0


def over_memory(limit_pages):
    """Is the resident memory of all the program's processes over the limit? (Only without a run
    cgroup, which counts everything the run holds, kernel memory included, and that nothing in
    /proc can hide from.)

    Cheap first pass: resident pages from statm, an upper bound (pages shared after fork, or
    mapped by several processes, are counted once per process); only when that is over the limit,
    the proportional set size from smaps_rollup decides. Shared memory (MAP_SHARED mappings,
    tmpfs files mapped) counts: statm's "shared" column is not subtracted, as it holds those
    pages too. A process whose smaps_rollup cannot be read (one that made itself non-dumpable:
    the zygote may not ptrace-read it) counts with its statm figure, never as zero. In ns mode
    the worker holds nothing but the zygote and the current program's processes.
    """
    if MODE == "ns":
        pids = [n for n in os.listdir("/proc") if n.isdigit() and n != MY_PID]
    else:
        pids = [str(p) for p in descendants(os.getpid())]
    resident = {}  # pid -> resident pages (statm: no ptrace check, readable for every process)
    for name in pids:
        try:
            with open(f"/proc/{name}/statm", "rb") as f:
                resident[name] = int(f.read().split()[1])
        except (OSError, ValueError, IndexError):
            pass  # (gone meanwhile: it holds nothing)
    if sum(resident.values()) <= limit_pages:
        return False
    pss_kb = 0
    for name, pages in resident.items():
        try:
            with open(f"/proc/{name}/smaps_rollup", "rb") as f:
                pss_kb += memory_pss_kb(f.read())
        except (FileNotFoundError, ProcessLookupError):
            pass
        except (OSError, ValueError, IndexError):
            pss_kb += pages * PAGE // 1024  # unreadable is not zero: its resident set, an upper bound
    return pss_kb * 1024 > limit_pages * PAGE


def memory_pss_kb(rollup):
    """The memory a process holds, from its smaps_rollup: proportional anonymous and shared
    memory (Pss_Anon + Pss_Shmem: MAP_SHARED, SysV, tmpfs mappings); file pages (the interpreter,
    libraries, files it maps) are page cache the kernel can reclaim, and not counted. Kernels
    without the split (< 5.7) give the total Pss."""
    anon = shmem = total = None
    for line in rollup.split(b"\n"):
        if line.startswith(b"Pss_Anon:"):
            anon = int(line.split()[1])
        elif line.startswith(b"Pss_Shmem:"):
            shmem = int(line.split()[1])
        elif line.startswith(b"Pss:"):
            total = int(line.split()[1])
    if anon is not None and shmem is not None:
        return anon + shmem
    return total or 0


def cleanup_unsafe(workdir):
    """Unsafe mode: kill every descendant (they are re-parented to us, the subreaper), remove the dir."""
    me = os.getpid()
    for _ in range(100):
        children = descendants(me)
        if not children:
            break
        for pid in children:
            try:
                os.kill(pid, SIGKILL)
            except OSError:
                pass
        reap_all()
        time.sleep(0.001)
    reap_all()
    if workdir:
        import shutil
        shutil.rmtree(workdir, ignore_errors=True)


def reap_all():
    while True:
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                return
        except ChildProcessError:
            return


def descendants(root):
    parent = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as f:
                    stat = f.read()
                parent[int(name)] = int(stat[stat.rindex(b")") + 2:].split()[1])
            except (OSError, ValueError):
                pass
    out, frontier = [], {root}
    while frontier:
        nxt = {pid for pid, pp in parent.items() if pp in frontier}
        out.extend(nxt)
        frontier = nxt
    return out


# --------------------------------------------------------------------------------------------
# Start-up
# --------------------------------------------------------------------------------------------
PAGE = os.sysconf("SC_PAGE_SIZE")
MY_PID = str(os.getpid())
STDLIB_PATH = [p for p in sys.path if p and p != "."]
ARGV = ["main.py"]
ModuleType = type(sys)
import atexit  # noqa: E402  (a builtin module)
run_exitfuncs = atexit._run_exitfuncs


class Quitter:
    """exit() and quit(), which the site module (not loaded here: -S) would provide."""

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return f"Use {self.name}() or Ctrl-D (i.e. EOF) to exit"

    def __call__(self, code=None):
        try:
            sys.stdin.close()
        except BaseException:
            pass
        raise SystemExit(code)


if isinstance(__builtins__, dict):
    __builtins__["exit"], __builtins__["quit"] = Quitter("exit"), Quitter("quit")
else:
    __builtins__.exit, __builtins__.quit = Quitter("exit"), Quitter("quit")
RUN_CODE = run_in_process.__code__
POLLER = None
HAVE_SETPCAP = bool(_cap_eff() & (1 << 8))

WARM_UP_PROGRAM = r"""
import sys, math
from collections import defaultdict, Counter, deque


class Node:
    def __init__(self, value, children=()):
        self.value = value
        self.children = list(children)

    def total(self) -> int:
        return self.value + sum(c.total() for c in self.children)


def solve(data: str) -> str:
    nums = list(map(int, data.split()))
    counts = Counter(nums)
    groups = defaultdict(list)
    for i, n in enumerate(nums):
        groups[n % 3].append(i)
    q = deque(sorted(nums, key=lambda v: (-v, v)))
    best = max((a * b for a, b in zip(nums, nums[1:])), default=0)
    squares = {k: v * v for k, v in counts.items() if v}
    text = f"{len(nums)} {best:>5} {math.gcd(12, 18)} {sum(squares.values())} {q[0] if q else None!r}"
    try:
        1 // (len(nums) - len(nums))
    except ZeroDivisionError as e:
        text += " " + type(e).__name__
    return "\n".join([text, str(Node(1, [Node(2), Node(3)]).total()), "%d %s %.3f" % (1, "x", 2.5)])


print(solve("3 1 4 1 5 9 2 6 5 3 5"))
print(*[i * i for i in range(10)], sep=" ", end="\n")
sys.stdout.write(str(int("123") + len(sys.argv)) + "\n")
"""


def warm_up():
    """Run a representative program once, so that children do not each pay for the interpreter's
    lazy first-use initialisation (the compiler's AST types, codecs, formatting...) and start
    with the allocator's memory in place: a child copies those pages, it does not build them."""
    saved = sys.stdout, sys.stderr
    sink = io.StringIO()
    try:
        sys.stdout = sys.stderr = sink
        code = compile(WARM_UP_PROGRAM, WORKDIR + "/main.py", "exec", dont_inherit=True)
        exec(code, {"__name__": "__main__", "__builtins__": __builtins__})
        try:
            raise ValueError("warm-up")
        except ValueError as e:
            sys.excepthook(type(e), e, e.__traceback__)
        try:
            compile("def f(:\n", WORKDIR + "/main.py", "exec")
        except SyntaxError as e:
            sys.excepthook(type(e), e, e.__traceback__)
    except BaseException:
        pass
    finally:
        sys.stdout, sys.stderr = saved
    for stream in saved:
        stream.flush()


def self_test():
    """Fail fast (and clearly) if this kernel will not give us what every run needs: its
    namespaces, its own mounts and loopback (a dry run of a program's setup, in a child)."""
    if MODE != "ns":
        return None
    if not SYS:
        return f"unsupported architecture {MACHINE} for the namespace mode"
    if os.getpid() != 1:
        return "the zygote must be pid 1 of the worker's pid namespace (bwrap --as-pid-1)"
    try:
        setup_mount_namespace()
    except OSError as e:
        return f"cannot make the worker's mount namespace: {e}"
    try:
        fresh_worker_network()
    except OSError as e:
        return f"cannot make a network namespace with a loopback inside the sandbox: {e}"
    r, w = os.pipe()
    c = os.fork()
    if c == 0:
        try:
            os.close(r)
            _check(libc.unshare(NS_FLAGS), "unshare")
            x = os.fork()
            if x == 0:
                try:
                    if CGROUP_PROCS:
                        join_run_cgroup()
                    fresh_run_state(run_mounts(DEFAULT_DISK_MB))
                    os._exit(0 if os.getpid() == 1 and os.listdir("/proc/self/fd") else 3)
                except BaseException as e:
                    os.write(w, f"{e}".encode())
                    os._exit(4)
            os._exit(os.waitpid(x, 0)[1] >> 8)
        except BaseException as e:
            os.write(w, f"{e}".encode())
            os._exit(2)
    os.close(w)
    why = read_all(r).decode("utf-8", "replace")
    os.close(r)
    st = os.waitpid(c, 0)[1]
    if st != 0:
        return ("cannot give a program its own namespaces, mounts and loopback inside the sandbox "
                f"({why or f'self-test status {st}'}); the worker needs CAP_SYS_ADMIN in its own user namespace"
                + (", and write access to its run cgroup" if CGROUP_PROCS else ""))
    return None


def main():
    global TID_OFFSET, POLLER
    _signal.signal(SIGPIPE, _signal.SIG_IGN)
    _signal.signal(SIGINT, _signal.SIG_IGN)  # a KeyboardInterrupt would end the worker
    prctl(PR_SET_PDEATHSIG, SIGKILL, what="pdeathsig")
    prctl(PR_SET_CHILD_SUBREAPER, 1, what="subreaper")
    prctl(PR_SET_DUMPABLE, 0, what="dumpable")  # programs (same uid) cannot read or ptrace us
    os.environ.clear()  # e.g. LC_CTYPE from the interpreter's locale coercion: programs get none
    preload_failed = []
    for name in filter(None, PRELOAD.split(",")):
        try:  # modules programs commonly import: imported once here, free in every child
            module, _, function = name.partition(":")
            __import__(module)
            if function:  # "module:function": also call it once, e.g. to warm the module's caches
                getattr(sys.modules[module], function)()
        except Exception as e:
            preload_failed.append(f"{name} ({type(e).__name__}: {e})".replace("\n", " "))
    global TID_CELL
    if MODE == "ns" and SYS and len(os.listdir("/proc/self/task")) == 1:
        TID_OFFSET = calibrate_tid_offset()
        if TID_OFFSET is not None:
            TID_CELL = ctypes.c_int.from_address(libc.pthread_self() + TID_OFFSET)
    err = self_test()
    if err is None:
        try:
            install_seccomp()  # (sets LISTENER)
        except OSError as e:
            err = f"cannot install the seccomp filter: {e}"
    if err:
        send_text(OP_FATAL, err)
        return
    if not sys.flags.utf8_mode and (sys.stdout.encoding or "").lower().replace("-", "") != "utf8":
        sys.stdin = sys.__stdin__ = io.TextIOWrapper(io.BufferedReader(io.FileIO(0, "rb", closefd=False)),
                                                     encoding="utf-8", errors="surrogateescape")
        sys.stdout = sys.__stdout__ = io.TextIOWrapper(io.BufferedWriter(io.FileIO(1, "wb", closefd=False)),
                                                       encoding="utf-8", errors="surrogateescape")
        sys.stderr = sys.__stderr__ = io.TextIOWrapper(io.BufferedWriter(io.FileIO(2, "wb", closefd=False)),
                                                       encoding="utf-8", errors="backslashreplace",
                                                       line_buffering=True)
    POLLER = select.poll()
    POLLER.register(CTRL_FD, select.POLLIN)
    if LISTENER >= 0:
        POLLER.register(LISTENER, select.POLLIN)
    warm_up()
    gc.collect()
    gc.freeze()  # keep the collector from touching (and copying) the zygote's objects in children
    info = {"pid": os.getpid(), "uid": os.getuid(), "python": sys.version.split()[0],
            "executable": sys.executable, "mode": MODE, "seccomp": int(AUDIT_ARCH is not None),
            "spawn": "clone" if TID_OFFSET is not None else ("fork" if MODE != "ns" else "fork+unshare+fork"),
            "memory_accounting": "cgroup" if CGROUP_PROCS else "per-process",
            "network": "shared until used" if LISTENER >= 0 else ("fresh per run" if MODE == "ns" else "host"),
            "preload_failed": "; ".join(preload_failed)}
    ctrl.send(encode_ready(info))
    while True:
        try:
            raw, fds = recv_msg()
        except InterruptedError:
            continue
        if not raw or raw[0] == OP_EXIT:
            return
        job = JobHeader.decode(raw)
        if job is not None and len(fds) == 4:
            run_job(job, fds)
        else:
            for fd in fds:
                os.close(fd)
            if raw[0] == OP_JOB:
                send_text(OP_FATAL, "malformed job message")
                return


import io  # noqa: E402  (already imported by the interpreter at start-up)

main()
