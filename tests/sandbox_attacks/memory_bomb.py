# expect: memory_limit
# One huge allocation.
a = bytearray(64 * 1024 ** 3)
