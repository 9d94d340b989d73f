# expect: ok
# The host (this test) listens on an abstract unix socket name; abstract names are per network
# namespace, not per mount namespace, so a sandbox sharing the host's network namespace could reach
# it. Connect to it, squat it, and try the host's usual abstract names.
import socket
wins = []
for name in ["\0{{ABSTRACT}}", "\0/tmp/.X11-unix/X0", "\0/tmp/.X11-unix/X1", "\0/org/freedesktop/systemd1/notify",
             "\0/run/containerd/s/", "\0dbus-session", "\0jdwp"]:
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM, socket.SOCK_SEQPACKET):
        s = socket.socket(socket.AF_UNIX, kind)
        s.settimeout(0.3)
        try:
            s.connect(name)
            s.send(b"CONNECTED from the sandbox")
            wins.append((name, kind))
        except OSError:
            pass
        s.close()
squat = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    squat.bind("\0{{ABSTRACT}}")  # must succeed: our own namespace, where the host's name does not exist
    print("bound the host's name in our own namespace")
except OSError as e:
    wins.append(("name taken: same namespace as the host", e.strerror))
print("ESCAPED" if wins else "blocked", wins)
