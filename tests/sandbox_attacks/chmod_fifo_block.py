# expect: timeout
# Makes its own dirs unusable (chmod 000, sticky games), creates FIFOs named like the files the
# sandbox writes, then blocks forever opening one.
import os
for d in ("/tmp", "/dev/shm"):
    for name in ("main.py", "fifo"):
        try:
            os.mkfifo(os.path.join(d, name))
        except OSError as e:
            print(d, name, e)
os.mkfifo("fifo")
os.mkdir("locked")
os.mkfifo("locked/main.py")
os.chmod("locked", 0)
for d in ("/tmp", "/dev/shm"):
    try:
        os.chmod(d, 0o100)
    except OSError as e:
        print("chmod", d, e)
os.chmod(".", 0o100)
fd = os.open("fifo", os.O_RDONLY)
print("unreachable")
