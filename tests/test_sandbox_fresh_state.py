"""Nothing carried from one run to the next (issue 13, item 2).

A run must start from state that the previous run could not have touched. Programs that leave
their mark everywhere they can (tests/sandbox_attacks/mark_*.py and the older leave_* attacks)
run one after another on one worker, each followed by a probe
(tests/sandbox_support/fresh_state_probe.py) that reports its surroundings; every report must
equal the probe's report on a fresh worker. The marks print which of them took, so a test that
passes also shows that they were really made.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sandbox import Limits, SandboxPool, Status  # noqa: E402
from sandbox import cgroups  # noqa: E402
from sandbox.isolation import probe_bwrap  # noqa: E402

ATTACKS = ROOT / "tests" / "sandbox_attacks"
PROBE = (ROOT / "tests" / "sandbox_support" / "fresh_state_probe.py").read_text()
LIMITS = Limits(timeout_s=5, memory_mb=256)
# mark program -> the marks it must report as made
MARKS = {
    "mark_mount_roots.py": {"access_acl", "default_acl", "fifo", "filled", "inode_flags", "inodes", "mode", "times",
                            "xattr"},
    "mark_counters.py": {"inflight", "pids", "ptys", "tcp", "udp"},
    "leave_state.py": set(),
    "leave_process_state.py": set(),
    "inflight_fd_cycle.py": set(),
}
_ok, _why = probe_bwrap()
pytestmark = pytest.mark.skipif(not _ok and not os.environ.get("CI"),
                                reason=f"bubblewrap unavailable (in CI this fails instead): {_why}")


def program(name: str) -> str:
    return (ATTACKS / name).read_text().replace("{{MARKER}}", "rlvr-fresh-state").replace(
        "{{CALLER_CPUS}}", ",".join(map(str, sorted(os.sched_getaffinity(0)))))


def probe(pool: SandboxPool) -> dict:
    r = pool.run(PROBE, limits=LIMITS)
    assert r.status is Status.OK, r
    return json.loads(r.stdout)


def differences(fresh: dict, seen: dict) -> dict:
    return {key: (fresh.get(key), seen.get(key)) for key in sorted(set(fresh) | set(seen))
            if fresh.get(key) != seen.get(key)}


@pytest.mark.parametrize("setting", ["auto", "off"])
def test_each_run_starts_from_fresh_state(monkeypatch, setting):
    """With a run cgroup and without: after any mark, the probe sees what it sees on a fresh worker."""
    monkeypatch.setenv(cgroups.ENV, setting)
    with SandboxPool(1, limits=LIMITS) as fresh_pool:
        fresh = probe(fresh_pool)
    with SandboxPool(1, limits=LIMITS) as other:  # (the probe itself is deterministic)
        assert differences(fresh, probe(other)) == {}
    assert fresh["pids"]["proc"] == [1] and fresh["pids"]["first_child"] == 2
    assert all(fresh[root]["new_file"]["readable"] for root in ("/sandbox", "/tmp", "/dev/shm"))
    with SandboxPool(1, limits=LIMITS) as one:
        for name, must_take in MARKS.items():
            r = one.run(program(name), limits=LIMITS)
            assert r.status is Status.OK, (name, r)
            took = set(next((line.split()[1:] for line in r.stdout.splitlines() if line.startswith("marks:")), []))
            assert must_take <= took, (name, r.stdout, r.stderr)
            assert differences(fresh, probe(one)) == {}, name
        # and again, each mark right before the probe, the marks in another order
        for name in reversed(MARKS):
            assert one.run(program(name), limits=LIMITS).status is Status.OK
        assert differences(fresh, probe(one)) == {}


def test_sabotage_of_the_next_run_fails():
    """The default ACL that made every file of the next program unreadable, when mount roots were
    kept and cleaned: an honest program after it runs as on a fresh worker."""
    honest = ("import os\nopen('/tmp/data.txt', 'w').write('42')\nopen('out.txt', 'w').write('7')\n"
              "print(open('/tmp/data.txt').read(), open('out.txt').read(), oct(os.stat('main.py').st_mode))")
    with SandboxPool(1, limits=LIMITS) as one:
        before = one.run(honest)
        assert before.status is Status.OK and before.stdout == "42 7 0o100644\n", before
        assert one.run(program("mark_mount_roots.py")).status is Status.OK
        after = one.run(honest)
        assert (after.status, after.stdout) == (before.status, before.stdout), after
