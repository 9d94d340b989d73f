import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach a hub
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny random-init Qwen2 (2 layers, hidden 64) with a tokenizer trained on arithmetic text."""
    from grpo.models import quiet_transformers
    from grpo.tiny_model import build_tiny_policy_for_task

    quiet_transformers()
    out = tmp_path_factory.mktemp("tiny") / "model"
    return build_tiny_policy_for_task(out, "arithmetic", hidden_size=64, num_layers=2, corpus_rows=500)
