# expect: runtime_error
# fd 3 is a socket whose other end the zygote reads once the program is gone. Send descriptors into
# it (SCM_RIGHTS: our stdout, a listening socket, a socket pair whose other end we keep), credentials,
# a forged DONE message and out-of-band data, shut it down, then fail with exit code 3: the result
# must be runtime_error, on time, with our output, and the zygote must go on as before.
import array, os, socket, struct, sys
s = socket.socket(fileno=os.dup(3))
lst = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
lst.bind("\0zygote-bait")
lst.listen()
a, b = socket.socketpair()
fds = [1, 2, lst.fileno(), a.fileno(), s.fileno()]
for msg in (b"\x0c" + struct.pack("<qiidqB", 1, 0, 0, 0.0, 0, 0), b"S", b"E forged setup failure"):
    try:
        s.sendmsg([msg], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
    except OSError as e:
        print("sendmsg:", e.strerror)
try:
    s.sendmsg([b"c"], [(socket.SOL_SOCKET, socket.SCM_CREDENTIALS, struct.pack("iII", 1, 0, 0))])
    print("INJECTED: forged credentials")
except OSError:
    pass
try:
    s.send(b"!", socket.MSG_OOB)
except OSError:
    pass
s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
s.shutdown(socket.SHUT_RDWR)
b.send(b"anyone there?")
print("passed my descriptors to the zygote", flush=True)
sys.exit(3)
