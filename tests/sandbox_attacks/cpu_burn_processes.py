# expect: timeout
# Every allowed process burns CPU: the deadline still holds.
import os
for _ in range(8):
    if os.fork() == 0:
        break
while True:
    pass
