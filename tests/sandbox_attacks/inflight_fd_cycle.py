# expect: ok
# Puts its stdout, a 32 MiB deleted tmpfs file and a listening socket bound to an abstract name into
# a cycle of unix sockets in flight (SCM_RIGHTS): once the processes are gone, nothing in userspace
# holds them, but the kernel does until its unix-socket garbage collector runs. The result must
# not wait on that stdout, and the next program (inflight_fd_find.py) must find neither the name
# nor the file's memory.
import array, os, socket
def send_fds(sock, fds):
    sock.sendmsg([b"x"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
for i in range(8):
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(f"\0{{MARKER}}-{i}")
    listener.listen()
    fd = os.open(f"/tmp/big{i}", os.O_RDWR | os.O_CREAT)
    if i == 0:
        os.write(fd, b"y" * (32 << 20))
    os.unlink(f"/tmp/big{i}")
    a, b = socket.socketpair()
    send_fds(a, [listener.fileno(), fd, 1, 2, b.fileno()])  # b's own queue holds b: a cycle
    send_fds(b, [a.fileno()])
    for s in (listener, a, b):
        s.close()
    os.close(fd)
if os.fork() == 0:  # a child does the same with a unix datagram socket sent to itself
    d = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    d.bind("\0{{MARKER}}-dgram")
    d.connect("\0{{MARKER}}-dgram")
    send_fds(d, [d.fileno(), 1])
    os._exit(0)
os.wait()
print("cycles in flight")
