# expect: timeout runtime_error memory_limit
import os
while True:
    try:
        os.fork()
    except OSError:
        pass
