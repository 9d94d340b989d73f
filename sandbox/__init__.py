"""Isolated, fast execution of untrusted, model-written Python programs.

    from sandbox import run, run_batch, Limits, SandboxPool
    r = run("print(input()[::-1])", stdin="abc\n", limits=Limits(timeout_s=2))
    r.status, r.stdout            # (Status.OK, 'cba\\n')

Isolation is bubblewrap (user, pid, net, ipc, uts and mount namespaces, read-only system, no
network, empty environment) plus, per program, fresh namespaces, a fresh tmpfs working dir,
rlimits, a seccomp filter and a deadline enforced from outside. See sandbox/README.md.
The package uses only the standard library (and the `bwrap` binary).
"""

from .isolation import ISOLATIONS, SandboxUnavailable
from .limits import Limits
from .job import Job, make_job
from .pool import SandboxPool, run, run_batch
from .result import ExecResult, Status
from .worker import Worker

__all__ = ["run", "run_batch", "check", "Limits", "ExecResult", "Status", "SandboxPool", "SandboxUnavailable",
           "Job", "make_job", "Worker", "ISOLATIONS"]


def check(*args, **kwargs):
    """Report which isolation is active and why; see sandbox.check_isolation."""
    from .checks import check_isolation
    return check_isolation(*args, **kwargs)
