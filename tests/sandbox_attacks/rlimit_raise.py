# expect: ok
# Raising its own limits back up must fail.
import resource
wins = []
for res in (resource.RLIMIT_AS, resource.RLIMIT_NPROC, resource.RLIMIT_NOFILE, resource.RLIMIT_CPU,
            resource.RLIMIT_FSIZE):
    soft, hard = resource.getrlimit(res)
    try:
        resource.setrlimit(res, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        wins.append(res)
    except (ValueError, OSError):
        pass
print("RAISED" if wins else "blocked", wins)
