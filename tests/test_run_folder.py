"""A run folder under the mistakes users make, with real processes: Ctrl-C and SIGTERM save and say how
to continue; a second process is locked out (and a dead holder's lock is not stale); a resume may not
change what is learned; a rejected run writes nothing; a run that cannot learn stops and says why."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from test_cli_e2e import ENV, TINY, read_jsonl, rlvr

pytestmark = pytest.mark.slow


def start(run: Path, tiny_model_dir, *extra) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "grpo.cli", "train", "--output-dir", str(run),
                             "--set", f"model.path={tiny_model_dir}", *TINY, *extra],
                            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_step(proc: subprocess.Popen, run: Path, step: int, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while True:
        metrics = run / "metrics.jsonl"
        if metrics.is_file() and len(metrics.read_text().splitlines()) >= step:
            return
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.time() < deadline, "no step in time"
        time.sleep(0.05)


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_saves_the_step_and_says_how_to_continue(tiny_model_dir, tmp_path, signum, code):
    run = tmp_path / "run"
    proc = start(run, tiny_model_dir, "--set", "steps=200", "--set", "save_every=1000")  # no checkpoint of its own
    wait_for_step(proc, run, 1)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err[-3000:]
    step = len(read_jsonl(run / "metrics.jsonl"))
    assert (run / "checkpoints" / f"step-{step}" / "COMPLETE").is_file()
    last = err.strip().splitlines()[-1]
    assert last == (f"rlvr train: stopped after step {step}; newest checkpoint {run}/checkpoints/step-{step}; "
                    f"continue with: rlvr train --config {run}/config.yaml --resume"), err[-2000:]
    assert "Traceback" not in err
    # the printed command continues the run (here, as far as one more step)
    resumed = rlvr("train", "--config", str(run / "config.yaml"), "--resume", "--set", f"steps={step + 1}",
                   "--no-progress")
    assert [m["step"] for m in read_jsonl(run / "metrics.jsonl")] == list(range(1, step + 2)), resumed.stderr
    changes = [json.loads(line) for line in (run / "resumes.jsonl").read_text().splitlines()]
    assert changes == [{"resumed_at_step": step, "time": changes[0]["time"],
                        "changes": {"steps": {"from": 200, "to": step + 1}}}]
    assert yaml.safe_load((run / "config.yaml").read_text())["steps"] == step + 1  # the values it now runs with


def test_a_second_process_is_locked_out_and_a_dead_holders_lock_is_not_stale(tiny_model_dir, tmp_path):
    run = tmp_path / "run"
    first = start(run, tiny_model_dir, "--set", "steps=200", "--set", "save_every=1")
    try:
        wait_for_step(first, run, 2)
        second = rlvr("train", "--output-dir", str(run), "--resume", "--set", f"model.path={tiny_model_dir}",
                      *TINY, "--set", "steps=200", "--set", "save_every=1", check=False)
        assert second.returncode == 2
        assert f"is in use by pid {first.pid} on" in second.stderr and "Traceback" not in second.stderr
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    steps_before = len(read_jsonl(run / "metrics.jsonl"))
    rlvr("train", "--output-dir", str(run), "--resume", "--set", f"model.path={tiny_model_dir}", *TINY,
         "--set", f"steps={steps_before + 1}", "--set", "save_every=1")  # the kernel released the dead holder's lock
    steps = [m["step"] for m in read_jsonl(run / "metrics.jsonl")]
    assert steps == sorted(set(steps)) and steps[-1] == steps_before + 1


def test_resume_refuses_settings_that_change_what_is_learned(tiny_model_dir, tmp_path):
    run = tmp_path / "run"
    rlvr("train", "--output-dir", str(run), "--set", f"model.path={tiny_model_dir}", *TINY, "--set", "steps=1")
    before = (run / "config.yaml").read_text()
    proc = rlvr("train", "--output-dir", str(run), "--resume", "--set", f"model.path={tiny_model_dir}", *TINY,
                "--set", "steps=2", "--set", "optim.lr=0.5", check=False)
    assert proc.returncode == 2
    assert "optim.lr: 0.001 -> 0.5" in proc.stderr and "start a new run from the checkpoint" in proc.stderr
    assert (run / "config.yaml").read_text() == before and not (run / "resumes.jsonl").exists()


def test_a_rejected_run_writes_nothing(tiny_model_dir, tmp_path):
    for bad in (["--set", "verifier=no_such_verifier"], ["--set", "verifier=no_such_module:fn"],
                ["--set", "task=no_such_task"]):
        run = tmp_path / "never"
        proc = rlvr("train", "--output-dir", str(run), "--set", f"model.path={tiny_model_dir}", *TINY, *bad,
                    check=False)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert proc.stderr.strip().splitlines()[-1].startswith("rlvr train: error:")
        assert not run.exists()


def test_a_task_whose_rows_lack_the_answer_fails_at_load(tiny_model_dir, tmp_path):
    (tmp_path / "train.jsonl").write_text("".join(json.dumps({"question": f"{i}+1?", "final": i + 1}) + "\n"
                                                  for i in range(4)))
    (tmp_path / "task.yaml").write_text("name: finals\nverifier: math\ndata_files: {train: train.jsonl}\n")
    run = tmp_path / "run"
    proc = rlvr("train", "--output-dir", str(run), "--set", f"model.path={tiny_model_dir}", *TINY,
                "--set", f"task={tmp_path / 'task.yaml'}", "--set", "verifier=null", check=False)
    assert proc.returncode == 2 and "reads the field 'answer'" in proc.stderr and "answer_field" in proc.stderr
    assert not run.exists()


def test_a_run_the_verifier_cannot_judge_stops_with_the_first_reason(tiny_model_dir, tmp_path):
    run = tmp_path / "run"
    proc = rlvr("train", "--output-dir", str(run), "--set", f"model.path={tiny_model_dir}", *TINY,
                "--set", "verifier=plugin_verifiers:always_raises", "--set", "steps=20", check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "could judge no sample in 3 steps in a row" in proc.stderr and "KeyError('final')" in proc.stderr
    assert len(read_jsonl(run / "metrics.jsonl")) == 3


def test_print_config_and_did_you_mean(tmp_path):
    out = rlvr("train", "--print-config", "--set", "algo.group_size=4", cwd=tmp_path).stdout
    assert "group_size: 4  # G: samples per prompt" in out
    assert yaml.safe_load(out)["algo"]["group_size"] == 4
    assert not list(tmp_path.iterdir())  # nothing run, nothing written
    proc = rlvr("train", "--set", "algo.grup_size=4", check=False)
    assert proc.returncode == 2 and "did you mean 'algo.group_size'?" in proc.stderr


def test_train_on_a_fresh_clone_points_to_the_demo(tmp_path):
    proc = rlvr("train", "--set", "rollout.engine=hf", check=False, cwd=tmp_path)
    assert proc.returncode == 2 and "`rlvr demo`" in proc.stderr and "Traceback" not in proc.stderr
    assert not list(tmp_path.iterdir())
