# expect: timeout
# vfork(): the parent sleeps until the child execs or exits; the child (sharing the parent's memory)
# spins forever in machine code with every signal blocked. Both must die at the deadline.
import ctypes, mmap, os, signal
if os.uname().machine != "x86_64":
    import time; time.sleep(100)
signal.pthread_sigmask(signal.SIG_BLOCK, set(signal.Signals) - {signal.SIGKILL, signal.SIGSTOP})
# mov eax, 58 (vfork); syscall; test rax, rax; jnz parent; spin: jmp spin; parent: ret
code = b"\xB8\x3A\x00\x00\x00\x0F\x05\x48\x85\xC0\x75\x02\xEB\xFE\xC3"
m = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
m.write(code)
f = ctypes.CFUNCTYPE(ctypes.c_long)(ctypes.addressof(ctypes.c_char.from_buffer(m)))
if os.fork() == 0:
    f()  # a vforked grandchild spins too, under a child that is not pid 1
    os._exit(0)
print("vfork returned", f())
