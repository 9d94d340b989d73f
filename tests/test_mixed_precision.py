"""Mixed precision (``model.compute_dtype``): which models get it, what runs in bfloat16 and what stays
float32, that no autocast state leaks out of a forward, and that sampler and trainer still agree."""

import json
import sys
from pathlib import Path

import pytest
import torch

import grpo.models
from grpo.config import ConfigError, LoraConfig, ModelConfig, TrainConfig, load_config
from grpo.engines.base import SamplingParams
from grpo.engines.hf import HFEngine
from grpo.logprobs import completion_logprobs, pack
from grpo.models import cpu_has_bf16, load_policy
from grpo.precision import AUTO_MIN_PARAMS, compute_autocast, compute_dtype_of, resolve_compute_dtype
from grpo.trainer import train

sys.path.insert(0, str(Path(__file__).parent))  # plugin_verifiers

BF16_CPU = cpu_has_bf16(Path("/proc/cpuinfo").read_text()) is not False if Path("/proc/cpuinfo").exists() else True
needs_bf16 = pytest.mark.skipif(not BF16_CPU, reason="this CPU has no bfloat16 instructions")


@pytest.mark.parametrize("setting, param_dtype, params, cpu_bf16, expected", [
    ("auto", "float32", AUTO_MIN_PARAMS, True, torch.bfloat16),  # a real model on an AMX CPU
    ("auto", "float32", AUTO_MIN_PARAMS - 1, True, None),  # a tiny one: overhead-bound, stays float32
    ("auto", "float32", AUTO_MIN_PARAMS, False, None),  # no native bf16
    ("auto", "float32", AUTO_MIN_PARAMS, None, None),  # cannot tell: auto does not guess
    ("auto", "bfloat16", AUTO_MIN_PARAMS, True, None),  # bf16 weights compute in bf16 anyway
    ("float32", "float32", AUTO_MIN_PARAMS, True, None),
    ("bfloat16", "float32", 1000, True, torch.bfloat16),  # asked for: any size
    ("bfloat16", "float32", 1000, None, torch.bfloat16),
])
def test_compute_dtype_resolution(setting, param_dtype, params, cpu_bf16, expected):
    assert resolve_compute_dtype(setting, param_dtype, params, "cpu", cpu_bf16) is expected


def test_bfloat16_compute_where_it_would_be_emulated_is_refused(tiny_model_dir, monkeypatch):
    with pytest.raises(ValueError, match="no native bfloat16"):
        resolve_compute_dtype("bfloat16", "float32", 1000, "cpu", False)
    monkeypatch.setattr(grpo.models, "_read_cpuinfo", lambda: "flags\t\t: fpu sse2 avx2 avx512f\n")
    with pytest.raises(ConfigError, match=r"'model.compute_dtype' = 'bfloat16'.*model.compute_dtype=float32"):
        load_policy(ModelConfig(path=str(tiny_model_dir), compute_dtype="bfloat16"))


def test_bfloat16_compute_over_bfloat16_weights_is_refused_at_load():
    with pytest.raises(ConfigError, match=r"'compute_dtype' = 'bfloat16'.*model.dtype = 'bfloat16'"):
        ModelConfig(dtype="bfloat16", compute_dtype="bfloat16")
    with pytest.raises(ConfigError, match=r"^config field 'model.compute_dtype' = 'bfloat16'"):  # named once
        load_config(TrainConfig, None, ["model.dtype=bfloat16", "model.compute_dtype=bfloat16"])
    from grpo.commands.eval import run_eval

    with pytest.raises(ConfigError, match="--compute-dtype bfloat16 .* --dtype float32"):
        run_eval("unused", "arithmetic", dtype="bfloat16", compute_dtype="bfloat16")
    with pytest.raises(ConfigError, match="compute_dtype"):
        load_config(TrainConfig, None, ["model.compute_dtype=bf16"])


def test_a_tiny_model_stays_float32_by_default(tiny_model_dir):
    model, _ = load_policy(ModelConfig(path=str(tiny_model_dir)))
    assert compute_dtype_of(model) is None


def _dtypes_seen(model) -> dict[str, torch.dtype]:
    """The output dtype of the first decoder layer's q_proj and of the LM head in the next forward."""
    seen: dict[str, torch.dtype] = {}
    layer = next(m for n, m in model.named_modules() if n.endswith("layers.0.self_attn.q_proj"))

    def record(name):
        def hook(module, args, out) -> None:
            seen.setdefault(name, out.dtype)
        return hook

    handles = [layer.register_forward_hook(record("q_proj")),
               model.get_output_embeddings().register_forward_hook(record("lm_head"))]
    return seen, handles


@needs_bf16
@pytest.mark.parametrize("lora", [None, LoraConfig(r=4, alpha=8.0, target_modules=("q_proj", "v_proj"))],
                         ids=["full", "lora"])
def test_matrix_products_in_bfloat16_the_head_weights_and_gradients_in_float32(tiny_model_dir, lora):
    plain, _ = load_policy(ModelConfig(path=str(tiny_model_dir), compute_dtype="float32", lora=lora))
    mixed, _ = load_policy(ModelConfig(path=str(tiny_model_dir), compute_dtype="bfloat16", lora=lora))
    if lora is not None:  # the same fresh adapters in both (LoRA B starts at zero; A is random)
        mixed.load_state_dict(plain.state_dict())
    assert compute_dtype_of(mixed) is torch.bfloat16
    batch = pack([[1, 2, 3, 4], [1, 2, 3, 4], [5, 6]], [[7, 8, 9], [7, 10], [11, 12, 13]], 0)
    seen, handles = _dtypes_seen(mixed)
    mixed_lp, _ = completion_logprobs(mixed, batch)
    for h in handles:
        h.remove()
    assert seen == {"q_proj": torch.bfloat16, "lm_head": torch.float32}
    assert not torch.is_autocast_enabled("cpu")  # nothing leaks out of the forward
    plain_lp, _ = completion_logprobs(plain, batch)
    mask = batch.completion_mask.bool()
    diff = (mixed_lp - plain_lp)[mask].abs()
    assert 0 < diff.max() < 0.05, diff  # bf16 rounding, not float32 (which agrees to ~1e-6) and not garbage
    mixed_lp[mask].sum().backward()
    assert all(p.dtype == torch.float32 and p.grad.dtype == torch.float32
               for p in mixed.parameters() if p.grad is not None)


@needs_bf16
def test_a_forward_that_raises_leaves_no_autocast_behind(tiny_model_dir):
    mixed, _ = load_policy(ModelConfig(path=str(tiny_model_dir), compute_dtype="bfloat16"))
    with pytest.raises(Exception):
        mixed(input_ids=torch.tensor([[10**6]]))  # a token id past the vocabulary
    assert not torch.is_autocast_enabled("cpu")
    seen, _ = _dtypes_seen(mixed)
    mixed(input_ids=torch.tensor([[1, 2, 3]]))
    assert seen == {"q_proj": torch.bfloat16, "lm_head": torch.float32}


@needs_bf16
def test_generate_samples_in_the_compute_dtype_and_agrees_with_the_trainer(tiny_model_dir):
    """The HF engine's log-probs of what it sampled against the trainer's recomputation: both in mixed
    precision, they differ only by bf16 rounding (incremental vs whole-sequence), far under the probe's 0.1."""
    model, tokenizer = load_policy(ModelConfig(path=str(tiny_model_dir), compute_dtype="bfloat16"))
    engine = HFEngine(model, tokenizer)
    seen, handles = _dtypes_seen(model)
    prompts = [tokenizer.encode("1+2="), tokenizer.encode("30+4=")]
    out = engine.generate(prompts, 4, SamplingParams(max_new_tokens=10, temperature=1.0), seeds=[3, 4])
    for h in handles:
        h.remove()
    assert seen == {"q_proj": torch.bfloat16, "lm_head": torch.float32}
    assert not torch.is_autocast_enabled("cpu")
    prompt_rows = [prompts[i] for i in out.prompt_index]
    batch = pack(prompt_rows, out.token_ids, tokenizer.pad_token_id)
    with torch.no_grad():
        trainer_lp, _ = completion_logprobs(model, batch)
    sampler = torch.zeros_like(trainer_lp)
    for i, lp in enumerate(out.logprobs):
        sampler[i, : len(lp)] = torch.tensor(lp)
    mask = batch.completion_mask.bool()
    assert (trainer_lp - sampler)[mask].abs().mean() < 0.02


def test_compute_autocast_is_a_no_op_for_a_float32_model(tiny_model_dir):
    model, _ = load_policy(ModelConfig(path=str(tiny_model_dir), compute_dtype="float32"))
    with compute_autocast(model):
        assert not torch.is_autocast_enabled("cpu")


def _train(model_dir, run: Path, compute_dtype: str) -> list[dict]:
    train(load_config(TrainConfig, None, [
        f"model.path={model_dir}", f"output_dir={run}", "steps=2", "save_every=2",
        f"model.compute_dtype={compute_dtype}", "algo.prompts_per_step=2", "algo.group_size=4",
        "rollout.max_new_tokens=12", "threads=1", "rollout.engine=hf", "optim.lr=1e-2",
        "verifier=plugin_verifiers:digit_share"]), show_progress=False)
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@needs_bf16
def test_training_in_mixed_precision_keeps_float32_weights_and_the_probe(tiny_model_dir, tmp_path, capsys):
    from transformers import AutoModelForCausalLM

    metrics = _train(tiny_model_dir, tmp_path / "mixed", "bfloat16")
    assert "(float32 weights, bfloat16 compute)" in capsys.readouterr().err  # the banner says so
    _train(tiny_model_dir, tmp_path / "plain", "float32")
    assert [m["step"] for m in metrics] == [1, 2]
    assert all(m["rollout/logprob_diff"] < 0.1 for m in metrics), [m["rollout/logprob_diff"] for m in metrics]
    mixed, plain = (AutoModelForCausalLM.from_pretrained(tmp_path / name / "checkpoints" / "step-2", dtype="auto")
                    for name in ("mixed", "plain"))
    assert mixed.dtype == torch.float32  # the weights (and the optimizer) stay float32
    # the same seed, other arithmetic: the runs part (bf16 rounding), but not far
    gaps = [(a - b).abs().max().item() for a, b in zip(mixed.parameters(), plain.parameters())]
    assert 0 < max(gaps) < 0.1, max(gaps)


@needs_bf16
def test_reward_models_and_critics_compute_in_bfloat16_with_float32_heads(tiny_model_dir):
    """``model.compute_dtype`` reaches the RLHF path's sequence classifiers: the backbone's products in
    bfloat16, the score / value head and every weight and gradient float32; ``auto`` leaves a tiny one
    float32 (the same line as the policy's)."""
    from grpo.critic import critic_values, head_of
    from grpo.models import use_classifier_compute_dtype
    from grpo.reward_model import init_reward_model

    plain, _ = init_reward_model(ModelConfig(path=str(tiny_model_dir)))
    assert use_classifier_compute_dtype(plain, ModelConfig(path=str(tiny_model_dir))) is None  # auto, tiny
    mixed, _ = init_reward_model(ModelConfig(path=str(tiny_model_dir)))
    mixed.load_state_dict(plain.state_dict())
    with torch.no_grad():
        for model in (plain, mixed):
            head_of(model).weight.copy_(torch.linspace(-1, 1, head_of(model).weight.numel()).view_as(head_of(model).weight))
    assert use_classifier_compute_dtype(mixed, ModelConfig(path=str(tiny_model_dir), compute_dtype="bfloat16")) is torch.bfloat16
    batch = pack([[1, 2, 3, 4], [1, 2, 3, 4], [5, 6]], [[7, 8, 9], [7, 10], [11, 12, 13]], 0)
    seen: dict[str, torch.dtype] = {}

    def record(name):
        def hook(module, args, out) -> None:
            seen.setdefault(name, out.dtype)
        return hook

    q_proj = next(m for n, m in mixed.named_modules() if n.endswith("layers.0.self_attn.q_proj"))
    handles = [q_proj.register_forward_hook(record("q_proj")), head_of(mixed).register_forward_hook(record("head"))]
    values, final = critic_values(mixed, batch)  # the critic's path: backbone, then the head on its own
    scores = mixed(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits  # the reward model's
    for h in handles:
        h.remove()
    assert seen == {"q_proj": torch.bfloat16, "head": torch.float32}
    assert values.dtype == scores.dtype == torch.float32 and not torch.is_autocast_enabled("cpu")
    plain_values, _ = critic_values(plain, batch)
    mask = batch.completion_mask.bool()
    diff = (values - plain_values)[mask].abs()
    assert 0 < diff.max() < 0.05, diff  # bf16 rounding in the backbone, not float32's agreement, not garbage
    (values[mask].sum() + final.sum()).backward()
    assert all(p.dtype == torch.float32 and p.grad.dtype == torch.float32
               for p in mixed.parameters() if p.grad is not None)
    assert head_of(mixed).weight.grad is not None


@needs_bf16
def test_ppo_and_rm_training_load_their_classifiers_in_the_compute_dtype(tiny_model_dir, tmp_path, monkeypatch):
    """``rlvr ppo`` gives its reward model and critic the policy's ``model.compute_dtype`` (their backbones,
    not their heads), and ``rlvr rm`` the reward model it trains (two real steps, the model it trains
    recorded on its way in)."""
    from grpo.config import PPOConfig
    from grpo.ppo import load_models
    from ppo_support import build_reward_model

    rm = build_reward_model(tmp_path / "rm", tiny_model_dir, kind="random")
    for setting, expected in (("bfloat16", torch.bfloat16), ("auto", None)):
        cfg = load_config(PPOConfig, None, [f"output_dir={tmp_path / 'run'}", f"model.path={tiny_model_dir}",
                                            f"reward.reward_model.path={rm}", f"model.compute_dtype={setting}"])
        models = load_models(cfg, cfg.model, None)
        assert compute_dtype_of(models.policy) is expected
        for classifier in (models.reward_model, models.critic.critic):
            assert compute_dtype_of(classifier.model) is expected
            assert compute_dtype_of(classifier.score) is None
        # what the run's header prints for the critic
        assert models.critic_source.endswith("float32 weights, bfloat16 compute)" if expected else "; float32)")

    import grpo.rm_train
    from grpo.config import RewardModelConfig
    from grpo.pairs import write_pairs
    from pair_support import boxed_pairs, torch_threads

    trained = []
    real_train = grpo.rm_train._train

    def recording_train(cfg, run_dir, model, *args, **kwargs):
        trained.append(model)
        return real_train(cfg, run_dir, model, *args, **kwargs)

    pairs = write_pairs(tmp_path / "pairs.jsonl", boxed_pairs("train", 16, 0))
    rm_cfg = load_config(RewardModelConfig, None, [
        f"model.path={tiny_model_dir}", f"data.train={pairs}", f"output_dir={tmp_path / 'rm-run'}", "steps=2",
        "batch_size=8", "optim.micro_batch_size=8", "eval_every=0", "model.compute_dtype=bfloat16", "threads=1"])
    monkeypatch.setattr(grpo.rm_train, "_train", recording_train)
    with torch_threads(1):  # the run sets torch's threads from its config; later tests get theirs back
        grpo.rm_train.train_reward_model(rm_cfg, show_progress=False)
    (model,) = trained
    assert compute_dtype_of(model.model) is torch.bfloat16 and compute_dtype_of(model.score) is None
    assert all(p.dtype == torch.float32 for p in model.parameters())
