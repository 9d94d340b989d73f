# expect: ok
import os, shutil
for t in ["{{SENTINEL}}", "/usr/bin/env", "/etc/hostname"]:
    try:
        os.remove(t)
        print("ESCAPED", t)
    except OSError:
        pass
for d in ["{{SENTINEL_DIR}}", "/usr/lib", "/tmp/..", "/"]:
    try:
        shutil.rmtree(d)
        print("ESCAPED", d)
    except OSError:
        pass
print("done")
