import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from grpo.checkpoint import latest_checkpoint, load_trainer_state, save_checkpoint
from grpo.models import resolve_model_path


def test_atomic_save_keep_and_latest(tiny_model_dir, tmp_path):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    run = tmp_path / "run"
    for step in (1, 2, 3):
        save_checkpoint(run, step, model, tokenizer, {"step": step}, keep=2)
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert names == ["step-2", "step-3"]
    assert latest_checkpoint(run).name == "step-3"
    assert load_trainer_state(latest_checkpoint(run))["step"] == 3
    # a save killed half-way leaves a .tmp folder, and a folder without the marker is not complete
    (run / "checkpoints" / ".tmp-step-9-123").mkdir()
    (run / "checkpoints" / "step-8").mkdir()
    assert latest_checkpoint(run).name == "step-3"
    assert resolve_model_path(str(run)) == str(run / "checkpoints" / "step-3")
    # the next save clears the leftover temp folder
    save_checkpoint(run, 4, model, tokenizer, {"step": 4}, keep=2)
    assert not (run / "checkpoints" / ".tmp-step-9-123").exists()
    loaded = AutoModelForCausalLM.from_pretrained(latest_checkpoint(run))
    for (n, a), (_, b) in zip(model.named_parameters(), loaded.named_parameters()):
        assert torch.equal(a, b), n


def test_a_stale_later_checkpoint_never_evicts_the_new_one(tiny_model_dir, tmp_path):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    run = tmp_path / "run"
    save_checkpoint(run, 800, model, tokenizer, {}, keep=1)
    save_checkpoint(run, 5, model, tokenizer, {}, keep=1)
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step-5"]
