# expect: ok
# Invalid UTF-8, NULs, lone surrogates, terminal escapes, one enormous line: the result must still
# be well-formed JSON, within the cap, with status ok.
import sys
out = sys.stdout.buffer
out.write(b"\xff\xfe\xfd\x00\x00\xc3\x28\xa0\xa1\xe2\x28\xa1\xf0\x28\x8c\xbc\x00\r\x1b[2J\x1b]0;pwn\x07\n")
out.write(b"A" * 900_000)  # one line, close to the 1 MiB cap
out.write(b"\n")
sys.stdout.write("\udcff\udc80 surrogates\n")
sys.stdout.flush()
sys.stderr.buffer.write(b"\x00\xff" * 1000 + b"\n")
print("\u2028\u2029\ufeff end")
