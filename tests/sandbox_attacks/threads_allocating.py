# expect: memory_limit
# Many threads, each allocating as fast as it can, with --memory-mb 256.
import threading, time
hold = []
def grab():
    while True:  # dies with MemoryError (printed by threading.excepthook)
        hold.append(bytearray(4 << 20))
ts = []
for _ in range(60):
    try:
        t = threading.Thread(target=grab, daemon=True)
        t.start()
        ts.append(t)
    except RuntimeError:
        break
for t in ts:
    t.join()
hold.append(bytearray(300 << 20))  # the main thread's own uncaught MemoryError
