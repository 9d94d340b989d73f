# expect: timeout
# Catastrophic backtracking: the whole deadline is spent inside one C call (no bytecode boundary).
import re
re.match(r"(a+)+$", "a" * 64 + "b")
