# expect: ok
# Netlink, which the sandbox allows (name resolution needs it): create interfaces (a veth pair to the
# outside, a dummy), add addresses and routes, bring links up, write audit records, subscribe to the
# host's process events (proc connector), dump sockets. Only reading its own namespace may work.
import os, socket, struct
wins = []
def nl(proto, msg_type, flags, payload, groups=0):
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, proto)
    s.settimeout(0.5)
    s.bind((0, groups))
    hdr = struct.pack("=LHHLL", 16 + len(payload), msg_type, flags, 1, 0)
    s.send(hdr + payload)
    try:
        data = s.recv(65536)
    except OSError:
        return s, None
    if len(data) >= 20 and struct.unpack("=H", data[4:6])[0] == 2:  # NLMSG_ERROR
        return s, -struct.unpack("=i", data[16:20])[0]
    return s, data
def rta(kind, data):
    n = 4 + len(data)
    return struct.pack("=HH", n, kind) + data + b"\0" * ((4 - n % 4) % 4)
NLM_F_REQUEST, NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL = 1, 4, 0x400, 0x200
ifinfo = struct.pack("=BxHiII", 0, 0, 0, 0, 0)
for kind in (b"dummy", b"veth", b"bridge", b"vxlan"):
    payload = ifinfo + rta(3, b"x" + kind[:6] + b"\0") + rta(18, rta(1, kind + b"\0"))  # IFLA_IFNAME, IFLA_LINKINFO/KIND
    try:
        _, err = nl(0, 16, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, payload)  # RTM_NEWLINK
        if err == 0:
            wins.append(("newlink", kind))
    except OSError:
        pass
addr = struct.pack("=BBBBI", 2, 8, 0, 0, 1) + rta(2, socket.inet_aton("10.66.0.1")) + rta(1, socket.inet_aton("10.66.0.1"))
try:
    _, err = nl(0, 20, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE, addr)  # RTM_NEWADDR on lo
    if err == 0:
        wins.append("newaddr")
except OSError:
    pass
up = struct.pack("=BxHiII", 0, 0, 1, 1, 1)  # lo up
try:
    _, err = nl(0, 16, NLM_F_REQUEST | NLM_F_ACK, up)
    print("set lo up:", err)
except OSError:
    pass
for proto, msg, name in [(9, 1107, "audit user message"), (9, 1000, "audit get")]:
    try:
        _, err = nl(proto, msg, NLM_F_REQUEST | NLM_F_ACK, b"INJECTED\0")
        if err == 0:
            wins.append(name)
    except OSError:
        pass
try:  # proc connector: every fork/exec/exit on the host
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, 11)
    s.bind((os.getpid(), 1))
    cn = struct.pack("=IIIIHH", 1, 1, 0, 0, 4, 0) + struct.pack("=I", 1)  # CN_IDX_PROC, PROC_CN_MCAST_LISTEN
    s.send(struct.pack("=LHHLL", 16 + len(cn), 3, 0, 0, os.getpid()) + cn)
    s.settimeout(0.5)
    data = s.recv(4096)
    if len(data) > 40:
        wins.append("proc connector events")
except OSError:
    pass
print("ESCAPED" if wins else "blocked", wins)
