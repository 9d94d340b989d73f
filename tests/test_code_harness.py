"""The code verifier's harness program as it travels (compiled, with its source as the fallback)
and how its units are counted. Every program here runs in the sandbox."""

import pytest

from sandbox import run_batch
from verifiers import code
from verifiers.code import code_partial, code_verifier, plan_tests

SQRT = {"entry_point": "isqrt", "tests": "def check(candidate):\n    assert candidate(4) == 2\n    assert candidate(9) == 3\n"}
GOOD, BAD = "def isqrt(n):\n    return int(n ** 0.5)\n", "def isqrt(n):\n    return 2\n"


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "source fallback"])
def test_the_harness_runs_compiled_or_from_its_source(compiled):
    pending = [code._plan(program, SQRT, False) for program in (GOOD, BAD)]
    jobs = [p.jobs[0] for p in pending]
    assert jobs[0]["program"] == code.HARNESS_LOADER and len(jobs[0]["program"]) < 600
    if not compiled:  # as for a sandbox interpreter of another version: another magic number
        for job in jobs:
            job["files"] = dict(job["files"], **{code.HARNESS_CODE_FILE: b"\0\0\r\n" + code.HARNESS_CODE[4:]})
    verdicts = [p.judge([r]) for p, r in zip(pending, run_batch(jobs))]
    assert [v.status for v in verdicts] == ["correct", "incorrect"], verdicts


EXPECTS_ERROR = ("def check(candidate):\n    assert candidate(4) == 2\n    try:\n        candidate(-1)\n"
                 "    except ValueError:\n        pass\n    else:\n        assert False\n")


def test_assert_false_where_an_exception_was_expected_is_a_test():
    assert plan_tests(EXPECTS_ERROR).total == 2
    assert plan_tests("def check(candidate):\n    assert True, 'not a test'\n    assert candidate(1)\n").total == 1
    example = {"entry_point": "isqrt", "tests": EXPECTS_ERROR}
    assert code_verifier(GOOD, example).status == "incorrect"  # returns for -1 instead of raising
    v = code_partial(GOOD, example)
    assert (v.status, v.reward) == ("incorrect", 0.5), v
    raising = "def isqrt(n):\n    if n < 0:\n        raise ValueError(n)\n    return int(n ** 0.5)\n"
    assert code_verifier(raising, example).status == "correct"


def test_a_failure_after_the_last_test_fails_the_suite():
    # The last statement is no test (no assert), but it must not raise: the run failed.
    example = {"entry_point": "isqrt", "tests": "def check(candidate):\n    assert candidate(4) == 2\n    candidate(-1)\n"}
    crashing = "def isqrt(n):\n    return int(n ** 0.5) if n >= 0 else [][0]\n"
    v = code_verifier(crashing, example)
    assert (v.status, v.reward) == ("incorrect", 0.0) and "IndexError" in v.reason, v
    v = code_partial(crashing, example)
    assert (v.status, v.reward) == ("incorrect", 0.5) and "1/1 tests passed" in v.reason, v
    assert code_verifier("def isqrt(n):\n    return int(abs(n) ** 0.5)\n", example).status == "correct"
