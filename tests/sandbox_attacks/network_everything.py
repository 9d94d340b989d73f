# expect: ok
# Every way out to the host's network: TCP/UDP to the host's loopback listener (v4, v6, mapped),
# the host's other addresses, abstract and path unix sockets, raw/ping sockets, netlink, DNS.
import os, socket
wins = []
port = {{PORT}}
for fam, addr in [(socket.AF_INET, ("127.0.0.1", port)), (socket.AF_INET, ("127.0.1.1", port)),
                  (socket.AF_INET6, ("::1", port)), (socket.AF_INET6, ("::ffff:127.0.0.1", port)),
                  (socket.AF_INET, ("0.0.0.0", port)), (socket.AF_INET, ("10.0.2.2", 53)),
                  (socket.AF_INET, ("169.254.169.254", 80)), (socket.AF_INET, ("172.17.0.1", port))]:
    try:
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.settimeout(0.5)
        s.connect(addr)
        wins.append(("tcp", addr))
        s.sendall(b"CONNECTED")
        s.close()
    except OSError:
        pass
try:
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.sendto(b"x", ("127.0.0.1", 53))
    u.sendto(b"x", ("8.8.8.8", 53))
    wins.append("udp sendto outside")
except OSError:
    pass
for name in ["\0/tmp/.X11-unix/X0", "\0/org/freedesktop/systemd1/notify", "/run/systemd/private",
             "/var/run/docker.sock", "/run/dbus/system_bus_socket", "\0process_api"]:
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(0.5)
        s.connect(name)
        wins.append(("unix", name))
    except OSError:
        pass
for fam, typ, proto in [(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP), (socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP),
                        (socket.AF_PACKET if hasattr(socket, "AF_PACKET") else 17, socket.SOCK_RAW, 0)]:
    try:
        s = socket.socket(fam, typ, proto)
        s.settimeout(0.5)
        try:
            s.sendto(b"\x08\0\0\0\0\0\0\0", ("127.0.0.1", 0))
            wins.append(("raw/ping send", fam, typ))
        except OSError:
            pass
    except OSError:
        pass
try:
    ifs = socket.if_nameindex()
except OSError:
    ifs = []
print("interfaces:", ifs)
if [n for _, n in ifs if n != "lo"]:
    wins.append(("interfaces", ifs))
try:
    n = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 15)  # NETLINK_KOBJECT_UEVENT
    n.bind((0, 1))
    n.settimeout(0.3)
    try:
        print("uevent:", n.recv(100))
    except OSError:
        pass
except OSError as e:
    print("netlink uevent:", e)
for host in ("example.com", "localhost.localdomain", "metadata.google.internal"):
    try:
        print("resolved", host, socket.getaddrinfo(host, 80)[0][4])
        if host != "localhost.localdomain":
            wins.append("DNS RESOLVED " + host)
    except OSError:
        pass
print("ESCAPED" if wins else "blocked", wins)
