# expect: ok
# Socket families no network namespace confines (vsock reaches the hypervisor host) or that expose
# kernel attack surface (packet, alg): all refused.
import socket
wins = []
for family, kind, addr in [(40, socket.SOCK_STREAM, (2, 5001)), (40, socket.SOCK_STREAM, (2, 2024)),
                           (40, socket.SOCK_STREAM, (1, 2024)), (17, socket.SOCK_RAW, None),
                           (38, socket.SOCK_SEQPACKET, None), (31, socket.SOCK_STREAM, None)]:
    try:
        s = socket.socket(family, kind)
    except OSError:
        continue
    wins.append(("socket", family))
    if addr:
        try:
            s.settimeout(1)
            s.connect(addr)
            wins.append(("connected", family, addr))
        except OSError:
            pass
    s.close()
print("ESCAPED" if wins else "blocked", wins)
