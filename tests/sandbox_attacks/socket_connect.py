# expect: ok
# The test listens on the host's loopback; the program must not reach it (nor anything else).
import socket
for host, port in [("127.0.0.1", {{PORT}}), ("localhost", {{PORT}}), ("1.1.1.1", 53), ("8.8.8.8", 443)]:
    try:
        s = socket.create_connection((host, port), timeout=1)
        s.sendall(b"escaped")
        print("CONNECTED", host, port)
        s.close()
    except OSError as e:
        pass
try:
    socket.getaddrinfo("example.com", 80)
    print("DNS RESOLVED")
except OSError:
    pass
print("done")
