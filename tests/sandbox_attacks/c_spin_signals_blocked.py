# expect: timeout
# A CPU loop in machine code (no Python bytecode, so no Python signal handler ever runs) with every
# blockable signal blocked and SIGXCPU/SIGTERM ignored; in two processes.
import ctypes, mmap, os, signal
signal.pthread_sigmask(signal.SIG_BLOCK, set(signal.Signals) - {signal.SIGKILL, signal.SIGSTOP})
for s in (signal.SIGXCPU, signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(s, signal.SIG_IGN)
os.fork()
if os.uname().machine == "x86_64":
    code = b"\xEB\xFE"            # jmp $
else:
    code = b"\x00\x00\x00\x14"    # aarch64: b .
m = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
m.write(code)
ctypes.CFUNCTYPE(None)(ctypes.addressof(ctypes.c_char.from_buffer(m)))()
