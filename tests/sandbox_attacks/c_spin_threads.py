# expect: timeout
# Many threads, each spinning in machine code with the GIL released (a ctypes call), every signal
# blocked, the main thread asleep in C as well: nothing of Python ever runs again.
import ctypes, mmap, os, signal, threading
signal.pthread_sigmask(signal.SIG_BLOCK, set(signal.Signals) - {signal.SIGKILL, signal.SIGSTOP})
for s in (signal.SIGXCPU, signal.SIGTERM, signal.SIGINT):
    signal.signal(s, signal.SIG_IGN)
code = b"\xEB\xFE" if os.uname().machine == "x86_64" else b"\x00\x00\x00\x14"
m = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
m.write(code)
spin = ctypes.CFUNCTYPE(None)(ctypes.addressof(ctypes.c_char.from_buffer(m)))
threading.stack_size(256 << 10)
for _ in range(12):
    threading.Thread(target=spin, daemon=True).start()
ctypes.CDLL(None).pause()
