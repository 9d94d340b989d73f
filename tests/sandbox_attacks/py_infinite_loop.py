# expect: timeout
# Pure-Python busy loop: stopped at the deadline from outside.
while True:
    pass
