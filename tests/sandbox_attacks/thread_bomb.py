# expect: timeout runtime_error memory_limit
import threading, time
def spin():
    while True:
        time.sleep(1)
while True:
    try:
        threading.Thread(target=spin, daemon=True).start()
    except (RuntimeError, MemoryError):
        pass
