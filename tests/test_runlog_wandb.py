"""report_to: wandb logs every step's scalars to a W&B run, offline when no account is set up, and a
resumed run continues the same W&B run."""

import pytest

pytest.importorskip("wandb")

from grpo.runlog import RunLog  # noqa: E402


def test_wandb_logs_offline_and_resumes_the_same_run(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    log = RunLog(tmp_path, tensorboard=False, wandb_config={"algo": {"group_size": 4}})
    run = log._wandb
    assert run.settings.mode == "offline"  # never a login prompt mid-run
    assert run.config["algo"] == {"group_size": 4}
    log.log(1, {"reward/mean": 0.25, "note": "text is skipped", "bad": float("nan")})
    log.log(2, {"reward/mean": 0.5})
    assert run.summary["reward/mean"] == 0.5 and not {"bad", "note"} & set(run.summary.keys())
    run_id = run.id
    log.close()
    assert (tmp_path / "wandb_run_id").read_text().strip() == run_id
    assert list((tmp_path / "wandb").glob(f"offline-run-*-{run_id}/run-{run_id}.wandb"))
    resumed = RunLog(tmp_path, resume_step=2, tensorboard=False, wandb_config={})
    assert resumed._wandb.id == run_id
    resumed.close()
