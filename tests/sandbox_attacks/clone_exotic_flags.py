# expect: ok
# Raw clone() from machine code, with flags no library call uses: processes sharing our memory
# (CLONE_VM without CLONE_THREAD), siblings of our parent (CLONE_PARENT, from a child: the new
# process's parent is the run's pid 1; from pid 1 itself it would be the zygote, which the kernel
# refuses), raw threads, all parked in pause() with every signal blocked; then the program exits.
# None of them may outlive the run.
import ctypes, mmap, os, signal, time
if os.uname().machine != "x86_64":
    print("not x86_64"); raise SystemExit(0)
libc = ctypes.CDLL(None, use_errno=True)
signal.pthread_sigmask(signal.SIG_BLOCK, set(signal.Signals) - {signal.SIGKILL, signal.SIGSTOP})
CLONE_VM, CLONE_FS, CLONE_FILES, CLONE_SIGHAND, CLONE_PARENT, CLONE_THREAD = 0x100, 0x200, 0x400, 0x800, 0x8000, 0x10000
CLONE_PTRACE, CLONE_UNTRACED, CLONE_IO = 0x2000, 0x800000, 0x80000000
def clone_code(flags, stack_top):
    # mov rdi, flags; mov rsi, stack; xor edx,edx; xor r10,r10; xor r8,r8; mov eax,56; syscall;
    # test rax,rax; jnz parent; child: mov eax,34 (pause); syscall; jmp child; parent: ret
    return (b"\x48\xBF" + flags.to_bytes(8, "little") + b"\x48\xBE" + stack_top.to_bytes(8, "little") +
            b"\x31\xD2\x4D\x31\xD2\x4D\x31\xC0\xB8\x38\x00\x00\x00\x0F\x05\x48\x85\xC0\x75\x09"
            b"\xB8\x22\x00\x00\x00\x0F\x05\xEB\xF7\xC3")
def raw_clone(flags):
    stack = mmap.mmap(-1, 1 << 16, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    top = ctypes.addressof(ctypes.c_char.from_buffer(stack)) + (1 << 16) - 64
    code = clone_code(flags, top)
    m = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    m.write(code)
    f = ctypes.CFUNCTYPE(ctypes.c_long)(ctypes.addressof(ctypes.c_char.from_buffer(m)))
    keep.extend([stack, m, f])
    return f()
keep = []
results = {}
for name, flags in [("vm-process", CLONE_VM | signal.SIGCHLD), ("vm+files+fs+io", CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_IO),
                    ("parent", CLONE_PARENT | signal.SIGCHLD), ("thread", CLONE_VM | CLONE_SIGHAND | CLONE_THREAD),
                    ("untraced", CLONE_UNTRACED | CLONE_PTRACE | signal.SIGCHLD)]:
    results[name] = raw_clone(flags)
r, w = os.pipe()
if os.fork() == 0:  # from a child (not pid 1): CLONE_PARENT makes siblings of the child
    keep = []
    os.write(w, repr([raw_clone(CLONE_PARENT) for _ in range(3)] + [raw_clone(CLONE_PARENT | CLONE_VM)]).encode())
    os._exit(0)
print(results, os.read(r, 1000).decode())
