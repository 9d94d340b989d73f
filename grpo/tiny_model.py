"""Build a tiny policy locally: a real Qwen2 architecture and a BPE tokenizer.

Used by the demo, the tests and the benchmarks, so that nothing is fetched from a
model hub. The tokenizer is trained with the ``tokenizers`` library (byte-level
BPE, digits split one per token so numbers are spelled digit by digit); the model
is ``Qwen2ForCausalLM`` with head_dim 64, which vLLM can load.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import torch

from grpo.checkpoint import share_like_umask

EOS = "<|endoftext|>"
PAD = "<|pad|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def train_tokenizer(texts: Iterable[str], vocab_size: int = 384):
    """A byte-level BPE tokenizer trained on ``texts``, as a ``PreTrainedTokenizerFast``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS, PAD, IM_START, IM_END],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token=EOS, pad_token=PAD, padding_side="left", additional_special_tokens=[IM_START, IM_END]
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_tiny_qwen2(
    vocab_size: int,
    *,
    hidden_size: int = 256,
    num_layers: int = 4,
    intermediate_size: int = 1024,
    head_dim: int = 64,
    max_position_embeddings: int = 512,
    eos_token_id: int | None = None,
    pad_token_id: int | None = None,
    seed: int = 0,
):
    """A randomly initialised ``Qwen2ForCausalLM`` (fp32) of the given size."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    if hidden_size % head_dim:
        raise ValueError(f"hidden_size {hidden_size} must be a multiple of head_dim {head_dim}")
    heads = hidden_size // head_dim
    config = Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        head_dim=head_dim,
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=True,
        eos_token_id=eos_token_id,
        pad_token_id=pad_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = eos_token_id
    model.generation_config.pad_token_id = pad_token_id
    return model


def build_tiny_policy(out_dir: str | Path, texts: Iterable[str], *, vocab_size: int = 384, seed: int = 0, **model_kwargs) -> Path:
    """Train a tokenizer on ``texts``, build a tiny Qwen2, save both to ``out_dir``."""
    out = Path(out_dir)
    tokenizer = train_tokenizer(texts, vocab_size=vocab_size)
    model = build_tiny_qwen2(
        len(tokenizer),
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        seed=seed,
        **model_kwargs,
    )
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    share_like_umask(out)
    return out


def build_tiny_policy_for_task(out_dir: str | Path, task_name: str = "arithmetic", *, hidden_size: int = 128,
                               num_layers: int = 4, seed: int = 0, corpus_rows: int = 5000) -> Path:
    """A tiny policy whose tokenizer is trained on ``task_name``'s prompts and demonstrations."""
    from tasks import get_task

    task = get_task(task_name)
    rows = task.load("train")[:corpus_rows]
    texts = [task.prompt(r) + " " + str(r.get(task.solution_field or task.answer_field, "")) for r in rows]
    return build_tiny_policy(out_dir, texts, seed=seed, hidden_size=hidden_size, num_layers=num_layers,
                             intermediate_size=4 * hidden_size)
