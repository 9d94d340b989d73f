# expect: timeout runtime_error memory_limit
# The same through the low-level module (no os-level bookkeeping).
import posix
while True:
    try:
        posix.fork()
    except OSError:
        pass
