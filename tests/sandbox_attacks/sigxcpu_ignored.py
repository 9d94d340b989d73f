# expect: timeout
# Ignores SIGXCPU (the soft CPU-limit signal) and keeps burning: the hard CPU limit or the deadline wins.
import signal
signal.signal(signal.SIGXCPU, signal.SIG_IGN)
while True:
    pass
