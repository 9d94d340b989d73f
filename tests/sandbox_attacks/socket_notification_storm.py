# expect: memory_limit
# Every network socket() a program makes reaches the supervisor first (so that the next program
# gets a fresh network namespace). Threads that make sockets without pause keep the supervisor
# busy answering: its memory check must still run - here four processes together go over
# memory_mb while the storm lasts.
import os, socket, threading, time

for _ in range(4):
    if os.fork() == 0:
        x = bytearray(100 << 20)
        for i in range(0, len(x), 4096):
            x[i] = 1
        time.sleep(30)


def storm():
    while True:
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM).close()


threading.stack_size(1 << 18)
for _ in range(8):
    threading.Thread(target=storm, daemon=True).start()
time.sleep(30)
