# expect: timeout memory_limit
# A huge power computed in C, then converted to decimal: long C-level work and memory.
x = 7 ** (10 ** 9)
print(len(str(x)))
