# expect: ok
# Listening works only inside the sandbox's own network namespace: the host cannot reach it.
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", {{LISTEN_PORT}}))
s.listen()
s.settimeout(1.5)
try:
    conn, addr = s.accept()
    print("ACCEPTED", addr)
except OSError:
    print("nobody came")
