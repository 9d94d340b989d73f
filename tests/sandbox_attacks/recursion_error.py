# expect: runtime_error
# Plain deep recursion: RecursionError, an ordinary runtime error.
def f(n):
    return f(n + 1) + 1
f(0)
