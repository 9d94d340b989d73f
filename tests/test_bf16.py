"""bfloat16 training on the CPU, the CPU check that refuses it where it would be emulated, gradient
checkpointing, and the peak-memory metric."""

import json
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

import grpo.models
from grpo.config import ConfigError, LoraConfig, ModelConfig, TrainConfig, load_config
from grpo.logprobs import completion_logprobs, pack
from grpo.models import cpu_has_bf16, load_policy
from grpo.trainer import train

sys.path.insert(0, str(Path(__file__).parent))  # plugin_verifiers

BF16_CPU = cpu_has_bf16(Path("/proc/cpuinfo").read_text()) is not False if Path("/proc/cpuinfo").exists() else True


@pytest.mark.parametrize("cpuinfo, expected", [
    ("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni\n", True),  # AMD Zen 4, Cooper Lake
    ("flags\t\t: fpu avx2 avx512f amx_bf16 amx_tile amx_int8\n", True),  # Sapphire Rapids
    ("flags\t\t: fpu sse2 avx2 avx512f avx512bw avx512_vnni\n", False),  # Skylake / Cascade Lake server
    ("flags\t\t: fpu sse2 avx2\n", False),
    ("processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n", True),  # Arm (Neoverse V1)
    ("processor\t: 0\nFeatures\t: fp asimd evtstrm crc32\n", False),  # Arm (Cortex-A72)
    ("", None),  # no /proc/cpuinfo: cannot tell
])
def test_cpu_bf16_support_from_its_flags(cpuinfo, expected):
    assert cpu_has_bf16(cpuinfo) is expected


def test_bf16_on_a_cpu_without_bf16_is_refused_before_anything_is_written(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(grpo.models, "_read_cpuinfo", lambda: "flags\t\t: fpu sse2 avx2 avx512f\n")
    with pytest.raises(ConfigError, match=r"'model.dtype' = 'bfloat16': this CPU has no bfloat16 .*model.dtype=float32"):
        load_policy(ModelConfig(path=str(tiny_model_dir), dtype="bfloat16"))
    load_policy(ModelConfig(path=str(tiny_model_dir), dtype="float32"))  # float32 is fine there
    cfg = load_config(TrainConfig, None, [f"model.path={tiny_model_dir}", f"output_dir={tmp_path / 'run'}",
                                          "model.dtype=bfloat16", "rollout.engine=hf"])
    with pytest.raises(ConfigError, match="model.dtype"):
        train(cfg, show_progress=False)
    assert not (tmp_path / "run").exists()


def _metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.skipif(not BF16_CPU, reason="this CPU has no bfloat16 instructions")
@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_bf16_training_keeps_the_probe_under_its_default_limit(tiny_model_dir, tmp_path, lora):
    """HF engine: the module that samples is the module that trains, so in bf16 sampler and trainer differ
    only by the incremental (KV cache) vs whole-sequence forward; the probe's 0.1 must hold."""
    run = tmp_path / "run"
    train(load_config(TrainConfig, None, [
        f"model.path={tiny_model_dir}", f"output_dir={run}", "steps=2", "save_every=2", "model.dtype=bfloat16",
        "algo.prompts_per_step=2", "algo.group_size=4", "rollout.max_new_tokens=12", "threads=1", "rollout.engine=hf",
        "optim.lr=1e-2", "verifier=plugin_verifiers:digit_share",
        *(["model.lora={r: 4, alpha: 8, target_modules: [q_proj, v_proj]}"] if lora else [])]), show_progress=False)
    metrics = _metrics(run)
    assert [m["step"] for m in metrics] == [1, 2]
    assert all(m["rollout/logprob_diff"] < 0.1 for m in metrics), [m["rollout/logprob_diff"] for m in metrics]
    assert all(m["memory/peak_rss_gb"] > 0.1 for m in metrics)
    if not lora:  # the checkpoint keeps the training dtype
        assert AutoModelForCausalLM.from_pretrained(run / "checkpoints" / "step-2", dtype="auto").dtype == torch.bfloat16


def _grads(model, batch) -> dict[str, torch.Tensor]:
    model.train()
    model.zero_grad(set_to_none=True)
    logprobs, _ = completion_logprobs(model, batch)
    logprobs.sum().backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("lora", [None, LoraConfig(r=4, alpha=8.0, target_modules=("q_proj", "v_proj"))],
                         ids=["full", "lora"])
def test_gradient_checkpointing_recomputes_layers_and_gives_the_same_gradients(tiny_model_dir, lora):
    batch = pack([[5, 6, 7, 8], [9, 10]], [[11, 12, 13], [14, 15]], pad_id=0)
    torch.manual_seed(0)
    plain, _ = load_policy(ModelConfig(path=str(tiny_model_dir), lora=lora))
    torch.manual_seed(0)
    checkpointed, _ = load_policy(ModelConfig(path=str(tiny_model_dir), lora=lora, gradient_checkpointing=True))
    calls = []
    mlp = next(m for n, m in checkpointed.named_modules() if n.endswith("layers.0.mlp"))
    forward = mlp.forward

    def counted(*args, **kwargs):  # (forward hooks do not fire when the backward pass recomputes)
        calls.append(1)
        return forward(*args, **kwargs)

    mlp.forward = counted
    expected, got = _grads(plain, batch), _grads(checkpointed, batch)
    assert len(calls) == 2  # the forward pass, and its recomputation in the backward pass
    assert expected.keys() == got.keys() and expected
    if lora is not None:
        assert all(".lora_" in n for n in got)  # the adapters get gradients through the checkpointed layers
    assert all(torch.allclose(expected[n], got[n], atol=1e-6) for n in expected)
