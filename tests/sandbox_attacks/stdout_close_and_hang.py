# expect: timeout
# Closes its output early, then hangs: the caller must not wait on the pipes past the deadline.
import os, time
os.close(1)
os.close(2)
time.sleep(1000)
