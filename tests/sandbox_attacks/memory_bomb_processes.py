# expect: memory_limit timeout
# Each process stays under the per-process address-space limit; together they are far over.
import os, time
for _ in range(12):
    if os.fork() == 0:
        blocks = []
        try:
            for _ in range(12):
                blocks.append(bytearray(64 * 1024 * 1024))  # touched (zeroed) memory
        except MemoryError:
            pass
        time.sleep(60)
        os._exit(0)
time.sleep(60)
