# expect: ok
# Pokes at the kernel's knobs: /proc/sys, sysrq, the oom score of others, cgroups, /sys.
import os, glob
hits = []
# pid 1 is the program itself when its /proc is that of its own pid namespace (the zygote is not
# in it): writing its own comm or oom score is harmless.
own_pid_1 = os.readlink("/proc/self") == "1"
for p in ["/proc/sys/kernel/hostname", "/proc/sys/kernel/core_pattern", "/proc/sys/vm/drop_caches",
          "/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv4/ping_group_range", "/proc/sysrq-trigger",
          "/proc/sys/kernel/ns_last_pid", "/proc/sys/fs/file-max", "/proc/1/oom_score_adj",
          "/proc/1/comm", "/proc/self/oom_score_adj", "/proc/sys/kernel/modprobe",
          "/proc/sys/kernel/unprivileged_userns_clone", "/proc/self/setgroups", "/proc/self/uid_map",
          "/proc/self/gid_map", "/proc/1/attr/current", "/proc/timer_list", "/proc/kcore",
          "/proc/self/coredump_filter", "/proc/self/clear_refs"]:
    try:
        with open(p, "w") as f:
            f.write("0\n" if "oom" not in p else "-1000\n")
        if p in ("/proc/self/coredump_filter", "/proc/self/clear_refs") or (own_pid_1 and p.startswith("/proc/1/")):
            continue  # the program's own process: harmless
        hits.append(p)
    except OSError:
        pass
for p in glob.glob("/sys/fs/cgroup/**", recursive=True)[:200] + glob.glob("/sys/kernel/**")[:50]:
    if os.path.isfile(p):
        try:
            with open(p, "w") as f:
                f.write("1")
            hits.append(p)
        except OSError:
            pass
print("sys visible:", os.path.exists("/sys"), "cgroup:", os.path.exists("/sys/fs/cgroup"))
print("ESCAPED" if hits else "blocked", hits)
