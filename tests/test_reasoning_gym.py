"""reasoning-gym tasks (tasks/reasoning_gym.py) and the ``reasoning_gym`` verifier (verifiers/reasoning_gym.py).

Tests that generate or score problems skip where reasoning-gym is absent
(``pip install -e ".[reasoning-gym]"`` installs it; CI does).
"""

from __future__ import annotations

import importlib.util
import json

import pytest

from tasks import TaskError, get_task
from verifiers import get_verifier, verify_batch
from verifiers.reasoning_gym import extract_final_answer, reasoning_gym_verifier

HAS_RG = importlib.util.find_spec("reasoning_gym") is not None
needs_rg = pytest.mark.skipif(not HAS_RG, reason='needs reasoning-gym (pip install -e ".[reasoning-gym]")')
SMALL = "size=300&test_size=40"


@pytest.mark.parametrize("completion, expected", [
    ("so the sum is \\boxed{42}.", "42"),
    ("\\boxed{1} then, correcting myself, \\boxed{ 2 }", "2"),
    ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
    ("<think>4 legs each</think><answer> 28 </answer>", "28"),
    ("<answer>1</answer> ... <answer>3 + 4*5</answer>", "3 + 4*5"),
    ("<answer>\\boxed{7}</answer>", "7"),  # a box inside answer tags: the box
    ("<answer>wrong</answer> after all \\boxed{9}", "9"),  # a box wins over tags
    ("the answer is 5", None),
    ("\\boxed{unclosed", None),
    ("", None),
])
def test_extract_final_answer(completion, expected):
    assert extract_final_answer(completion) == expected


# --------------------------------------------------------------------------------------------
# Tasks
# --------------------------------------------------------------------------------------------
@needs_rg
@pytest.mark.parametrize("dataset", ["chain_sum", "gsm_symbolic", "basic_arithmetic", "leg_counting"])
def test_splits_are_disjoint_sized_and_seeded(dataset):
    task = get_task(f"reasoning_gym:{dataset}?{SMALL}")
    train, test = task.rows("train"), task.rows("test")
    assert len(train) == 300 and len(test) == 40
    train_q, test_q = {r["question"] for r in train}, {r["question"] for r in test}
    assert len(train_q) == 300 and len(test_q) == 40  # distinct within a split
    assert not train_q & test_q  # no question in both
    again = get_task(f"reasoning_gym:{dataset}?size=300&test_size=40&seed=0")
    assert again.rows("test") == test and again.rows("train") == train  # seed 0 is the default; deterministic
    other = get_task(f"reasoning_gym:{dataset}?{SMALL}&seed=1")
    assert len({r["question"] for r in other.rows("test")} & test_q) < 10  # another seed, other problems


@needs_rg
def test_held_out_split_does_not_depend_on_the_train_size():
    small = get_task("reasoning_gym:chain_sum?size=10&test_size=30").rows("test")
    large = get_task("reasoning_gym:chain_sum?size=500&test_size=30").rows("test")
    assert small == large


@needs_rg
def test_rows_carry_what_verifiers_read_as_json_data():
    task = get_task(f"reasoning_gym:countdown?size=20&test_size=5")
    assert task.verifier == "reasoning_gym" and task.use_chat_template and task.id_field == "id"
    for row in task.rows("train") + task.rows("test"):
        assert json.loads(json.dumps(row)) == row  # what a sandboxed verifier receives is this row
        assert row["rg_dataset"] == "countdown" and json.loads(row["rg_config"]) == {}
        assert {"question", "answer", "metadata", "id"} <= set(row)
    row = task.rows("test")[0]
    message = task.user_message(row)
    assert message.startswith(row["question"]) and "\\boxed{}" in message


@needs_rg
def test_generator_options_and_verifier_option_in_the_name():
    task = get_task("reasoning_gym:chain_sum?size=50&test_size=10&min_terms=2&max_terms=2&max_digits=2&verifier=math")
    assert task.verifier == "math"
    rows = task.rows("train")
    assert all(r["metadata"]["num_terms"] == 2 for r in rows)
    assert json.loads(rows[0]["rg_config"]) == {"max_digits": 2, "max_terms": 2, "min_terms": 2}
    assert "?" not in task.name and "&" not in task.name and "/" not in task.name  # names eval report folders
    plain = get_task("reasoning_gym:chain_sum")
    assert plain.name == "reasoning_gym:chain_sum" and len(plain.rows("test")) == 200


@needs_rg
def test_task_yaml_with_source_reasoning_gym(tmp_path):
    path = tmp_path / "legs.yaml"
    path.write_text(
        "name: legs\nsource: reasoning_gym\ndataset: leg_counting\nsize: 30\ntest_size: 8\nseed: 3\n"
        "config: {min_animals: 2, max_animals: 2}\nverifier: math\nsystem_prompt: Be brief.\n"
        "prompt_template: \"Q: {question}\\nA:\"\nuse_chat_template: false\n"
    )
    task = get_task(str(path))
    assert (task.name, task.verifier, task.system_prompt, task.use_chat_template) == ("legs", "math", "Be brief.", False)
    rows = task.rows("test")
    assert len(rows) == 8 and all(r["metadata"]["num_animals"] == 2 for r in rows)
    assert task.prompt(rows[0]) == f"Be brief.\n\nQ: {rows[0]['question']}\nA:"
    assert rows == get_task("reasoning_gym:leg_counting?size=30&test_size=8&seed=3&min_animals=2&max_animals=2").rows("test")

    path.write_text("source: reasoning_gym\ndataset: leg_counting\nsizes: 30\n")
    with pytest.raises(TaskError, match="unknown field 'sizes'"):
        get_task(str(path))
    path.write_text("source: reasoning_gym\nsize: 30\n")
    with pytest.raises(TaskError, match="'dataset' is required"):
        get_task(str(path))


@needs_rg
@pytest.mark.parametrize("name, message", [
    ("reasoning_gym:chain_summ", "unknown reasoning-gym dataset 'chain_summ'; did you mean chain_sum"),
    ("reasoning_gym:chain_sum?bogus=1", "no generator option 'bogus'; its options: allow_negation"),
    ("reasoning_gym:chain_sum?min_terms=5&max_terms=2", "rejects the options"),
    ("reasoning_gym:chain_sum?size=0", "size = 0: must be an integer >= 1"),
    ("reasoning_gym:chain_sum?seed=-1", "seed = -1"),
    ("reasoning_gym:chain_sum?size", "must be key=value"),
    ("reasoning_gym:chain_sum?min_terms=2&max_terms=2&min_digits=1&max_digits=1&size=10&test_size=200",
     None),  # a small problem space gives fewer rows, not an error
])
def test_bad_names_are_clear_errors(name, message):
    if message is None:
        rows = get_task(name).rows("test")
        assert 0 < len(rows) < 200
        return
    with pytest.raises(TaskError, match=message):
        get_task(name)


def test_without_reasoning_gym_the_error_says_how_to_install_it():
    import subprocess
    import sys
    from pathlib import Path

    program = ("import sys; sys.modules['reasoning_gym'] = None\nfrom tasks import get_task, TaskError\n"
               "try:\n    get_task('reasoning_gym:chain_sum')\nexcept TaskError as exc:\n    print('ERROR', exc)\n")
    out = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[1])
    assert "ERROR" in out.stdout and 'pip install -e ".[reasoning-gym]"' in out.stdout, out.stdout + out.stderr


# --------------------------------------------------------------------------------------------
# The verifier
# --------------------------------------------------------------------------------------------
@needs_rg
@pytest.mark.parametrize("dataset", ["chain_sum", "basic_arithmetic", "gsm_symbolic", "leg_counting", "countdown",
                                     "products"])
def test_gold_answers_score_correct_in_boxes_and_tags(dataset):
    rows = get_task(f"reasoning_gym:{dataset}?size=20&test_size=5").rows("test")
    for row in rows:
        for completion in (f"Working... so \\boxed{{{row['answer']}}}", f"<answer>{row['answer']}</answer>"):
            verdict = reasoning_gym_verifier(completion, row)
            assert (verdict.status, verdict.reward) == ("correct", 1.0), (completion, verdict)


@needs_rg
def test_verdicts_follow_the_dataset_scorer():
    import reasoning_gym

    gsm = get_task(f"reasoning_gym:gsm_symbolic?size=10&test_size=3").rows("test")[0]
    wrong = str(int(float(gsm["answer"])) + 1)
    verdict = reasoning_gym_verifier(f"\\boxed{{{wrong}}}", gsm)
    expected = reasoning_gym.create_dataset("gsm_symbolic").score_answer(wrong, gsm)
    assert verdict.status == "incorrect" and verdict.reward == expected == 0.01  # the scorer's own partial reward
    assert verdict.extracted == wrong
    none = reasoning_gym_verifier("I think it is about 12.", gsm)
    assert (none.status, none.reward) == ("incorrect", 0.0)

    chain = get_task("reasoning_gym:chain_sum?size=10&test_size=3").rows("test")[0]
    assert reasoning_gym_verifier("\\boxed{banana}", chain).status == "incorrect"


@needs_rg
def test_a_scorer_that_cannot_judge_is_unverifiable():
    row = get_task("reasoning_gym:leg_counting?size=5&test_size=2").rows("test")[0]
    broken = {**row, "answer": None}  # the scorer raises on a gold answer that is not a string
    verdict = reasoning_gym_verifier(f"\\boxed{{{row['answer']}}}", broken)
    assert verdict.status == "unverifiable" and "scorer of 'leg_counting' failed" in verdict.reason
    unknown = {**row, "rg_dataset": "no_such_dataset"}
    verdict = reasoning_gym_verifier(f"\\boxed{{{row['answer']}}}", unknown)
    assert verdict.status == "unverifiable" and "no_such_dataset" in verdict.reason
    stray = reasoning_gym_verifier("\\boxed{3}", {"answer": "3"})  # a row from some other task
    assert stray.status == "unverifiable" and "rg_dataset" in stray.reason


@needs_rg
def test_math_verifier_judges_numeric_reasoning_gym_rows():
    rows = get_task("reasoning_gym:leg_counting?size=10&test_size=4&verifier=math").rows("test")
    math = get_verifier("math")
    verdicts = verify_batch(math, [f"\\boxed{{{r['answer']}}}" for r in rows] + ["\\boxed{-1}"], rows + rows[:1])
    assert [v.status for v in verdicts] == ["correct"] * len(rows) + ["incorrect"]


@needs_rg
def test_registered_verifier_judges_in_the_sandbox():
    """The registered verifier runs in sandbox workers: rows cross as JSON, reasoning-gym loads there."""
    rows = get_task("reasoning_gym:basic_arithmetic?size=10&test_size=3").rows("test")
    completions = [f"\\boxed{{{r['answer']}}}" for r in rows] + ["no answer", "<answer>oops</answer>"]
    verdicts = verify_batch(get_verifier("reasoning_gym"), completions, rows + rows[:2])
    assert [v.status for v in verdicts] == ["correct"] * 3 + ["incorrect", "incorrect"], [v.reason for v in verdicts]
