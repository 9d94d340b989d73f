# expect: runtime_error
# Deep recursion through C code (map) with the recursion limit lifted: overflows the C stack.
import sys
sys.setrecursionlimit(10 ** 8)
def f(n):
    return list(map(f, [n + 1]))
f(0)
