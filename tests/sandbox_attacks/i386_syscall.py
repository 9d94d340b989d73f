# expect: runtime_error ok
# The 32-bit syscall entry (int 0x80) from a 64-bit process, via machine code: a filter that only
# knows x86_64 numbers would let unshare(CLONE_NEWUSER) (i386 nr 310) through. Must die or fail.
import ctypes, mmap, os
if os.uname().machine != "x86_64":
    print("not x86_64"); raise SystemExit(0)
# mov eax, 310 (unshare on i386); mov ebx, 0x10000000 (CLONE_NEWUSER); int 0x80; ret
code = bytes([0xB8]) + (310).to_bytes(4, "little") + bytes([0xBB]) + (0x10000000).to_bytes(4, "little") + b"\xCD\x80\xC3"
m = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
m.write(code)
addr = ctypes.addressof(ctypes.c_char.from_buffer(m))
f = ctypes.CFUNCTYPE(ctypes.c_int)(addr)
r = f()
print("int 0x80 returned", r)
if r == 0:
    print("ESCAPED: unshare(CLONE_NEWUSER) through the i386 entry")
