# expect: ok
fds = []
try:
    while True:
        fds.append(open("/dev/null"))
except OSError as e:
    print("stopped after", len(fds), e.strerror)
