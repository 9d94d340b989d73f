"""`python -m sandbox check`: which isolation is active, and why."""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict, dataclass, field
from typing import Any

from . import isolation as iso
from .limits import Limits
from .job import make_job
from .result import Status
from .worker import Worker

# Run inside the sandbox: what can a program see and do?
PROBE = r'''
import json, os, socket
def can_read(path):
    try:
        with open(path, "rb") as f:
            f.read(1)
        return True
    except OSError:
        return False
status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
out = {
    "uid": os.getuid(), "gid": os.getgid(), "pid": os.getpid(),
    "cap_eff": status["CapEff"].strip(), "cap_prm": status["CapPrm"].strip(),
    "no_new_privs": status.get("NoNewPrivs", "?").strip(), "seccomp": status.get("Seccomp", "?").strip(),
    "env": dict(os.environ), "hostname": socket.gethostname(), "cwd": os.getcwd(),
    "net_interfaces": [l.split(":")[0].strip() for l in open("/proc/net/dev").readlines()[2:]],
    "top_level": sorted(os.listdir("/")),
    "visible_processes": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
    "readable": {p: can_read(p) for p in ("/etc/shadow", "/root", "/home")},
}
try:
    s = socket.create_connection(("1.1.1.1", 53), timeout=1); s.close(); out["network"] = "REACHABLE"
except OSError as e:
    out["network"] = f"unreachable ({e.strerror or e})"
w = {}
for d in ("/", "/usr", "/etc", "/sandbox", "/tmp"):
    try:
        p = os.path.join(d, ".probe"); open(p, "w").close(); os.unlink(p); w[d] = True
    except OSError:
        w[d] = False
out["writable"] = w
print(json.dumps(out))
'''


@dataclass
class IsolationReport:
    isolation: str                 # what runs programs here: bwrap, or none (unsafe), or unavailable
    ok: bool                       # True when the requested isolation is active and verified
    reasons: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    def __str__(self) -> str:
        lines = [f"isolation: {self.isolation}  ({'OK' if self.ok else 'NOT AVAILABLE'})"]
        lines += [f"  - {r}" for r in self.reasons]
        return "\n".join(lines)


def check_isolation(isolation: str = "bwrap", allow_unsafe: bool = False) -> IsolationReport:
    """Find out (for real: by running a probe program) which isolation programs get here."""
    reasons: list[str] = []
    details: dict[str, Any] = {"platform": platform.platform(), "python": platform.python_version(),
                               "euid": os.geteuid()}
    try:
        used = iso.resolve_isolation(isolation, allow_unsafe)
    except iso.SandboxUnavailable as e:
        return IsolationReport("unavailable", False, [str(e)], details)
    except ValueError as e:
        return IsolationReport("unavailable", False, [str(e)], details)
    if used != isolation:
        reasons.append(f"requested {isolation!r} is unavailable; falling back to {used!r} because allow_unsafe")
    if used == "none":
        reasons.append("NO ISOLATION: programs run on the host as "
                       + ("uid 65534 (dropped from root)" if os.geteuid() == 0 else f"your uid {os.geteuid()}")
                       + ", with rlimits, their own session and a private temp dir; they can read your files"
                         " and use the network. Never use this for untrusted code.")
    else:
        bwrap = iso.find_bwrap()
        details["bwrap"] = f"{bwrap} ({iso.bwrap_version(bwrap)})" if bwrap else None
        reasons.append(f"bubblewrap found: {details['bwrap']}")
        if os.geteuid() == 0:
            reasons.append(f"running as root: bwrap and every program run as uid/gid {iso.SANDBOX_UID} on the host "
                           "(never root, not even inside a user namespace)")
        reasons.append("per worker: new user, pid, net, ipc, uts, cgroup and mount namespaces; read-only /usr and "
                       "interpreter, no /home, /root or host /tmp; empty environment; --die-with-parent, --new-session")
        reasons.append("per program: new pid (pid 1: everything dies with it), mount, ipc, uts and cgroup "
                       "namespaces; fresh mounts (tmpfs working dir, /tmp, /dev/shm; devpts; /proc of its own pid "
                       "namespace), gone with the run; after a program that made a network socket, a fresh network "
                       "namespace for the next; rlimits; no capabilities; no_new_privs; seccomp filter; deadline "
                       "enforced from outside")
    worker = Worker(used)
    try:
        worker.start()
    except iso.SandboxUnavailable as e:
        return IsolationReport("unavailable", False, reasons + [str(e)], details)
    try:
        details["worker"] = worker.info
        details["memory_accounting"] = worker.accounting
        res = worker.run(make_job(PROBE, limits=Limits(timeout_s=10)))
    finally:
        worker.close()
    if res.status is not Status.OK:
        return IsolationReport("unavailable", False, reasons + [f"probe program failed: {res.status}: "
                                                                f"{res.error} {res.stderr[-2000:]}"], details)
    probe = json.loads(res.stdout)
    details["probe"] = probe
    problems = []
    if used != "none":
        if probe["uid"] == 0 or probe["cap_eff"].strip("0") or probe["cap_prm"].strip("0"):
            problems.append(f"program has uid {probe['uid']} / capabilities {probe['cap_eff']}")
        if probe["no_new_privs"] != "1":
            problems.append("no_new_privs is not set")
        if probe["seccomp"] != "2":
            problems.append("no seccomp filter")
        if probe["env"]:
            problems.append(f"environment not empty: {sorted(probe['env'])}")
        if probe["net_interfaces"] != ["lo"] or probe["network"] == "REACHABLE":
            problems.append(f"network visible: {probe['net_interfaces']} {probe['network']}")
        if probe["pid"] != 1 or probe["visible_processes"] != [1]:
            problems.append(f"program is not alone in a pid namespace of its own (pid {probe['pid']}, "
                            f"sees {probe['visible_processes'][:10]})")
        leaked = [p for p, ok in probe["readable"].items() if ok]
        if leaked:
            problems.append(f"readable host paths: {leaked}")
        bad_w = [d for d, ok in probe["writable"].items() if ok and d not in ("/sandbox", "/tmp")]
        if bad_w:
            problems.append(f"writable system paths: {bad_w}")
    reasons.append(f"probe: uid={probe['uid']} pid={probe['pid']} caps={probe['cap_eff']} "
                   f"no_new_privs={probe['no_new_privs']} seccomp={probe['seccomp']} "
                   f"net={probe['net_interfaces']} ({probe['network']}) env={probe['env'] or 'empty'} "
                   f"interpreter={worker.info.get('executable')} {worker.info.get('python')} "
                   f"spawn={worker.info.get('spawn')}")
    if used != "none":
        if worker.info.get("memory_accounting") == "cgroup":
            reasons.append(f"memory limit: a memory cgroup per worker, joined by every program ({worker.accounting}); "
                           "the kernel counts all of a run's memory (kernel memory, tmpfs files and pages pinned in "
                           "pipes included), whatever the program does to /proc")
        else:
            reasons.append(f"WARNING: memory limit: {worker.accounting}: resident memory polled "
                           "from /proc (smaps_rollup, or statm where a process is unreadable, never zero); vmsplice "
                           "refused; memory the kernel holds for a run (socket buffers, page tables) is not counted "
                           "(see sandbox/README.md, Threat model)")
    reasons += [f"PROBLEM: {p}" for p in problems]
    ok = not problems and used == isolation
    return IsolationReport(used if used != "none" else "none (UNSAFE)", ok, reasons, details)
