# expect: ok
# Tries to write where it must not; prints ESCAPED for each success.
targets = ["{{SENTINEL}}", "{{SENTINEL_DIR}}/new_file", "/usr/evil", "/etc/passwd", "/bin/evil",
           "/root/evil", "/home/evil", "/evil", "/proc/sys/kernel/hostname", "/sys/evil", "/lib/evil",
           "/proc/1/root/evil", "/dev/evil", "/proc/sysrq-trigger"]
for t in targets:
    try:
        with open(t, "a") as f:
            f.write("pwned")
        print("ESCAPED", t)
    except OSError:
        pass
print("done")
