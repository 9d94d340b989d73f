"""The verifier registry: lookup by name, module:function and entry point; batch dispatch;
isolated verifiers in sandbox processes with a hard deadline."""

from __future__ import annotations

import os
import sys
import time
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # isolated_plugins

import verifiers.registry as registry
from verifiers import Verdict, get_verifier, register, verify_batch
from verifiers.isolated import IsolatedRunner, import_paths_for, verifier_ref


def test_lookup_errors_name_the_fix():
    with pytest.raises(ValueError, match="registered: .*module:function"):
        get_verifier("no_such_verifier")
    with pytest.raises(ValueError, match="cannot import module"):
        get_verifier("no_such_module_xyz:f")
    with pytest.raises(ValueError, match="has no function"):
        get_verifier("isolated_plugins:nope")


def test_entry_point_group(monkeypatch):
    """A package that declares `[project.entry-points."rlvr.verifiers"] name = "mod:fn"` is found by name."""
    ep = EntryPoint(name="from_entry_point", value="isolated_plugins:echo_length", group=registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "entry_points", lambda group: [ep] if group == registry.ENTRY_POINT_GROUP else [])
    assert "from_entry_point" in registry.available_verifiers()
    import isolated_plugins
    assert get_verifier("from_entry_point") is isolated_plugins.echo_length
    broken = EntryPoint(name="broken", value="no_such_module_xyz:f", group=registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "entry_points", lambda group: [broken])
    with pytest.raises(ValueError, match="entry point .* failed to load"):
        get_verifier("broken")


def test_register_rejects_a_second_function_under_a_taken_name():
    @register("test_registry_unique")
    def first(completion, example):
        return Verdict("correct", 1.0)

    with pytest.raises(ValueError, match="already registered"):
        register("test_registry_unique")(lambda c, e: Verdict("correct", 1.0))
    assert verifier_ref(first) == "test_registry_unique"


def test_batch_attribute_is_used_and_its_failure_is_unverifiable():
    calls = []

    def single(completion, example):
        raise AssertionError("the batch form must be used")

    def batch(completions, examples):
        calls.append(len(completions))
        return [Verdict("correct", 1.0, "batched") for _ in completions]

    single.batch = batch
    out = verify_batch(single, ["a", "b", "c"], [{}, {}, {}])
    assert calls == [3] and [v.reason for v in out] == ["batched"] * 3

    single.batch = lambda cs, es: [Verdict("correct", 1.0)]  # wrong length
    out = verify_batch(single, ["a", "b"], [{}, {}])
    assert [v.status for v in out] == ["unverifiable"] * 2 and "expected 2" in out[0].reason


def test_in_process_verifier_errors_are_unverifiable():
    def bad(completion, example):
        return {"status": "correct"}  # not a Verdict

    assert verify_batch(bad, ["x"], [{}])[0].status == "unverifiable"
    with pytest.raises(ValueError, match="2 completions but 1 examples"):
        verify_batch(bad, ["x", "y"], [{}])


def test_import_paths_cover_the_plugin_and_the_libraries():
    paths = import_paths_for("isolated_plugins:echo_length")
    assert str(Path(__file__).parent) in paths
    assert str(Path(registry.__file__).resolve().parents[1]) in paths
    with pytest.raises(ValueError, match="module-level function"):
        verifier_ref(lambda c, e: None)


@pytest.fixture(scope="module")
def runner_factory():
    runners = []

    def make(ref, **kw):
        r = IsolatedRunner(ref, workers=2, **kw)
        runners.append(r)
        return r

    yield make
    for r in runners:
        r.close()


def test_isolated_verifier_runs_in_sandboxed_processes(runner_factory):
    runner = runner_factory("isolated_plugins:echo_length")
    out = runner.verify(["abc", "abcd", "ab"], [{"answer": 3}, {"answer": 3}, {"answer": 2}])
    assert [v.status for v in out] == ["correct", "incorrect", "correct"]
    # each sample in a fresh process: pid 1 of its own pid namespace, not this process
    assert all(v.reason == "pid=1" for v in out), [v.reason for v in out]


def test_hanging_verifier_is_killed_at_the_deadline_and_unverifiable(runner_factory):
    runner = runner_factory("isolated_plugins:hangs", timeout_s=1.0)
    t = time.monotonic()
    out = runner.verify(["please hang", "fine", "hang again"], [{}, {}, {}])
    elapsed = time.monotonic() - t
    assert [v.status for v in out] == ["unverifiable", "correct", "unverifiable"]
    assert "timed out after 1 s" in out[0].reason
    assert elapsed < 1.0 + 2.0, elapsed  # both hangs in parallel, each killed at its deadline


def test_crashing_and_raising_verifiers_are_unverifiable(runner_factory):
    runner = runner_factory("isolated_plugins:crashes")
    out = runner.verify(["crash", "raise", "ok"], [{}, {}, {}])
    assert [v.status for v in out] == ["unverifiable", "unverifiable", "incorrect"]
    assert "parser exploded" in out[1].reason
    assert "runtime_error" in out[0].reason


def test_memory_hungry_verifier_is_stopped(runner_factory):
    runner = runner_factory("isolated_plugins:eats_memory", memory_mb=512)
    out = runner.verify(["x", "y"], [{"answer": 4000}, {"answer": 1}])
    assert out[0].status == "unverifiable" and out[1].status == "correct"


def test_verify_batch_dispatches_isolated_verifiers_to_the_sandbox():
    import isolated_plugins

    out = verify_batch(isolated_plugins.hangs, ["hang", "ok"], [{}, {}], timeout_s=0.5)
    assert [v.status for v in out] == ["unverifiable", "correct"]
    out = verify_batch(isolated_plugins.echo_length, ["ab"], [{"answer": 2}])
    assert out[0].reason == "pid=1" and os.getpid() != 1


def test_math_verifier_runs_sandboxed_and_agrees_with_in_process():
    """The built-in math verifier is isolated: verify_batch judges each sample in a sandboxed
    process, with the same verdicts as calling it directly; past the deadline it is unverifiable."""
    from verifiers.math import math_verifier

    assert get_verifier("math") is math_verifier and math_verifier.isolated
    cases = [("so \\boxed{\\frac{1}{2}}", "0.5"), ("The answer is 4 or 5.", "5"), ("#### 1,000,001", "1000000"),
             ("\\boxed{[0, 1)}", "[0,1)"), ("\\boxed{(0, 1)}", "[0,1)"), ("no answer here", "7")]
    completions = [c for c, _ in cases]
    examples = [{"answer": g} for _, g in cases]
    sandboxed = verify_batch(math_verifier, completions, examples)
    direct = [math_verifier(c, e) for c, e in zip(completions, examples)]
    assert sandboxed == direct
    assert [v.status for v in sandboxed] == ["correct", "incorrect", "incorrect", "correct", "incorrect", "incorrect"]
    late = verify_batch(math_verifier, completions[:2], examples[:2], timeout_s=0.001)
    assert [v.status for v in late] == ["unverifiable"] * 2 and "timed out" in late[0].reason
