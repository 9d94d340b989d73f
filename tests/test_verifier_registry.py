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
from verifiers.combine import weighted
from verifiers.isolated import IsolatedRunner, import_paths_for
from verifiers.registry import function_ref


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
    assert get_verifier("from_entry_point").fn is isolated_plugins.echo_length
    broken = EntryPoint(name="broken", value="no_such_module_xyz:f", group=registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "entry_points", lambda group: [broken])
    with pytest.raises(ValueError, match="entry point .* failed to load"):
        get_verifier("broken")


def test_register_rejects_a_second_function_under_a_taken_name():
    @register("test_registry_unique", isolated=False)
    def first(completion, example):
        return Verdict("correct", 1.0)

    with pytest.raises(ValueError, match="already registered"):
        register("test_registry_unique", isolated=False)(lambda c, e: Verdict("correct", 1.0))
    spec = get_verifier("test_registry_unique")
    assert spec.fn is first and not spec.isolated and "no deadline applies" in spec.deadline_note()


def test_register_isolates_by_default_and_refuses_what_a_child_cannot_import():
    with pytest.raises(ValueError, match="module-level function .* isolated=False"):
        @register("test_registry_closure")
        def closure(completion, example):
            return Verdict("correct", 1.0)
    import isolated_plugins

    spec = get_verifier("test_echo_length")
    assert spec.isolated and spec.fn is isolated_plugins.echo_length and spec.deadline_note() is None
    assert spec.ref == "isolated_plugins:echo_length"
    assert not hasattr(isolated_plugins.echo_length, "isolated")  # the function itself is left as it was
    plain = get_verifier("isolated_plugins:plain_function")  # a user's unregistered function: isolated too
    assert plain.isolated and plain.ref == "isolated_plugins:plain_function"


def test_batch_function_is_used_and_its_failure_is_unverifiable():
    calls = []

    def single(completion, example):
        raise AssertionError("the batch form must be used")

    def batch(completions, examples):
        calls.append(len(completions))
        return [Verdict("correct", 1.0, "batched") for _ in completions]

    spec = registry.make_spec("batched", single, batch=batch)
    out = verify_batch(spec, ["a", "b", "c"], [{}, {}, {}])
    assert calls == [3] and [v.reason for v in out] == ["batched"] * 3

    spec = registry.make_spec("short", single, batch=lambda cs, es: [Verdict("correct", 1.0)])  # wrong length
    out = verify_batch(spec, ["a", "b"], [{}, {}])
    assert [v.status for v in out] == ["unverifiable"] * 2 and "expected 2" in out[0].reason


def test_timeout_reaches_every_component_of_a_weighted_combination():
    """reward.timeout_s used to be dropped on the batch path: weighted({'math': 1}) never saw it."""
    seen = []

    def batch(completions, examples, *, timeout_s=None):
        seen.append(timeout_s)
        return [Verdict("correct", 1.0) for _ in completions]

    registry._REGISTRY.pop("test_batch_with_deadline", None)
    register("test_batch_with_deadline", batch=batch)(lambda c, e: Verdict("correct", 1.0))
    combo = weighted({"math": 1.0, "test_batch_with_deadline": 0.5, "test_hangs": 0.1})
    out = verify_batch(combo, ["\\boxed{1}", "hang"], [{"answer": "1"}, {"answer": "1"}], timeout_s=0.001)
    assert [v.status for v in out] == ["unverifiable", "unverifiable"]
    assert all("math: verifier timed out after 0.001 s" in v.reason for v in out)  # the isolated math verifier
    assert seen == [0.001]  # the batch verifier
    out = verify_batch(weighted({"test_hangs": 1.0}), ["hang", "ok"], [{}, {}], timeout_s=0.5)
    assert [v.status for v in out] == ["unverifiable", "correct"] and "timed out after 0.5 s" in out[0].reason


def test_finish_reasons_reach_verifiers_that_take_them():
    out = verify_batch(get_verifier("test_finish_reason"), ["a", "b"], [{}, {}], finish_reasons=["stop", "length"])
    assert [v.reason.split()[0] for v in out] == ["finish_reason=stop", "finish_reason=length"]
    assert out[0].reason.endswith("pid=1")  # judged in a sandboxed process
    in_process = registry.make_spec("fr", get_verifier("test_finish_reason").fn, isolated=False)
    assert verify_batch(in_process, ["a"], [{}], finish_reasons=["length"])[0].reason.startswith("finish_reason=length")
    with pytest.raises(ValueError, match="1 finish reasons"):
        verify_batch(in_process, ["a", "b"], [{}, {}], finish_reasons=["stop"])


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
        function_ref(lambda c, e: None)


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

    assert get_verifier("math").fn is math_verifier and get_verifier("math").isolated
    cases = [("so \\boxed{\\frac{1}{2}}", "0.5"), ("The answer is 4 or 5.", "5"), ("#### 1,000,001", "1000000"),
             ("\\boxed{[0, 1)}", "[0,1)"), ("\\boxed{(0, 1)}", "[0,1)"), ("no answer here", "7")]
    completions = [c for c, _ in cases]
    examples = [{"answer": g} for _, g in cases]
    sandboxed = verify_batch(get_verifier("math"), completions, examples)
    direct = [math_verifier(c, e) for c, e in zip(completions, examples)]
    assert sandboxed == direct
    assert [v.status for v in sandboxed] == ["correct", "incorrect", "incorrect", "correct", "incorrect", "incorrect"]
    late = verify_batch(math_verifier, completions[:2], examples[:2], timeout_s=0.001)  # found by its registration
    assert [v.status for v in late] == ["unverifiable"] * 2 and "timed out" in late[0].reason
