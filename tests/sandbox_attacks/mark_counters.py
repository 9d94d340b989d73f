# expect: ok
# Moves every counter it can see and leaves network state behind: pid numbers (a hundred
# processes), pseudo-terminal numbers, loopback traffic (TCP connections left in TIME_WAIT, UDP
# datagrams, a listener with a full backlog), an abstract unix socket kept alive in flight (sent
# over a unix socket that is itself in flight: only the kernel's collector frees it), System V
# and POSIX message queue attempts. The next program on the same worker must see none of it.
import os, socket

took = set()
for _ in range(100):
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
took.add("pids")
ptys = [os.openpty() for _ in range(8)]
took.add("ptys")
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(8)
for _ in range(20):
    c = socket.create_connection(listener.getsockname())
    s, _ = listener.accept()
    c.sendall(b"x" * 1000)
    s.recv(1000)
    s.close()  # the side that closes first is left in TIME_WAIT
    c.close()
took.add("tcp")
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(("127.0.0.1", 0))
for _ in range(50):
    u.sendto(b"y" * 100, u.getsockname())
took.add("udp")
backlog = socket.socket()
backlog.bind(("127.0.0.1", 0))
backlog.listen(1)
pending = [socket.create_connection(backlog.getsockname()) for _ in range(2)]
abstract = socket.socket(socket.AF_UNIX)
abstract.bind("\0rlvr-mark-abstract")
abstract.listen(1)
a, b = socket.socketpair()
a.sendmsg([b"x"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, bytes(memoryview(__import__("array").array(
    "i", [abstract.fileno(), a.fileno(), b.fileno()]))))])
took.add("inflight")
print("marks:", " ".join(sorted(took)))
