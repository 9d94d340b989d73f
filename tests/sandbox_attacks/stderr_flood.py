# expect: output_limit
import os
chunk = b"e" * 65536
while True:
    os.write(2, chunk)
