import pytest

from tasks import available_tasks, get_task
from tasks.arithmetic import ArithmeticSpec, generate, split_of
from verifiers import Verdict, get_verifier, register, verify_batch
from verifiers.arithmetic import last_boxed


def test_splits_are_disjoint_deterministic_and_verified():
    task = get_task("arithmetic")
    train, test = task.load("train"), task.load("test")
    assert len(test) >= 200
    assert not {r["question"] for r in train} & {r["question"] for r in test}
    assert all(split_of(r["question"]) == "test" for r in test)
    assert task.load("test") == test  # a pure function of the seed
    verify = get_verifier(task.verifier).fn
    for row in train[:300] + test[:300]:
        # the gold answer is the value of the expression, and a boxed demonstration states it
        assert eval(row["question"].removeprefix("What is ").removesuffix("?")) == int(row["answer"])
        expected = "correct" if "\\boxed{" in row["solution"] else "incorrect"
        assert verify(row["solution"], row).status == expected
        assert row["solution"].rstrip(".").endswith(row["answer"]) or row["solution"].endswith(f"{{{row['answer']}}}.")


def test_demonstration_styles_follow_the_spec():
    rows = generate("train", 2000, seed=0, spec=ArithmeticSpec(direct_fraction=0.3, unboxed_fraction=0.2))
    direct = sum("=" not in r["solution"] for r in rows) / len(rows)
    unboxed = sum("\\boxed" not in r["solution"] for r in rows) / len(rows)
    assert abs(direct - 0.3) < 0.05 and abs(unboxed - 0.2) < 0.05
    pure = generate("train", 300, seed=0, spec=ArithmeticSpec(direct_fraction=0.0, unboxed_fraction=0.0))
    assert all("=" in r["solution"] and "\\boxed{" in r["solution"] for r in pure)


def test_generate_is_seeded_and_respects_the_spec():
    spec = ArithmeticSpec(min_operands=2, max_operands=4, max_value=50, ops="+-*")
    a = generate("train", 300, seed=3, spec=spec)
    assert a == generate("train", 300, seed=3, spec=spec)
    assert a != generate("train", 300, seed=4, spec=spec)
    assert all(2 <= r["question"].count(" ") - 1 for r in a)
    with pytest.raises(ValueError, match="splits"):
        generate("validation", 3, seed=0)


@pytest.mark.parametrize(
    "completion, answer, status",
    [
        ("3 + 4 = 7. The answer is \\boxed{7}.", "7", "correct"),
        ("\\boxed{-12}", "-12", "correct"),
        ("\\boxed{ 12 }", "12", "correct"),
        ("\\boxed{+5}", "5", "correct"),
        ("first \\boxed{3} then \\boxed{4}", "4", "correct"),  # the last box counts
        ("first \\boxed{4} then \\boxed{3}", "4", "incorrect"),
        ("\\boxed{7.0}", "7", "incorrect"),  # exact integers only
        ("\\boxed{7", "7", "incorrect"),  # never closed
        ("The answer is 7.", "7", "incorrect"),  # no box
        ("\\boxed{{7}}", "7", "incorrect"),
        ("\\fbox{7}", "7", "correct"),
        ("\\boxed{4 or 5}", "4", "incorrect"),
        ("", "7", "incorrect"),
        ("\\boxed{7}", "seven", "unverifiable"),  # the gold is bad: the verifier cannot judge
    ],
)
def test_integer_boxed_table(completion, answer, status):
    verdict = get_verifier("integer_boxed").fn(completion, {"answer": answer})
    assert verdict.status == status
    assert verdict.reward == (1.0 if status == "correct" else 0.0)
    assert verdict.reason


def test_last_boxed_nested():
    assert last_boxed("\\boxed{\\frac{1}{2}} and \\boxed{x^{2}}") == "x^{2}"
    assert last_boxed("nothing") is None


def test_verify_batch_turns_crashes_into_unverifiable():
    def crashes(completion, example):
        raise RuntimeError("boom")

    verdicts = verify_batch(crashes, ["a"], [{}])
    assert verdicts[0].status == "unverifiable" and "boom" in verdicts[0].reason


def test_registry_plugins_and_errors():
    @register("test_always_right", isolated=False)
    def always(completion, example):
        return Verdict("correct", 1.0, "ok")

    assert get_verifier("test_always_right").fn is always
    assert get_verifier("verifiers.arithmetic:integer_boxed") is get_verifier("integer_boxed")
    with pytest.raises(ValueError, match="integer_boxed"):
        get_verifier("no_such_verifier")
    with pytest.raises(ValueError, match="cannot import"):
        get_verifier("no_such_module_xyz:fn")
    with pytest.raises(ValueError, match="status"):
        Verdict("maybe", 0.0)
    assert "arithmetic" in available_tasks()
    with pytest.raises(ValueError, match="arithmetic"):
        get_task("nope")
