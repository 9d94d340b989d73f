"""Grouped-query attention without copying the KV heads, on the CPU.

Hugging Face's ``sdpa`` attention hands a grouped-query model's keys and values to PyTorch's
``scaled_dot_product_attention`` with the native grouping (``enable_gqa``) only when there is no attention
mask; with one (left-padded prompts, a batch of completions of different lengths: every GRPO batch), it
first copies each KV head ``num_attention_heads / num_key_value_heads`` times (``repeat_kv``). In
decoding that copies the whole KV cache at every new token, in every layer: on 2 CPU cores, sampling
64 x 64 tokens from a 2M-parameter model took 0.58-0.69 s with the copies, 0.48-0.51 s without
(bench/RESULTS.md). PyTorch's CPU kernel takes a mask and ``enable_gqa`` together and computes the same
numbers (bit for bit in the forward pass; gradients to rounding), so on the CPU this attention passes the
KV heads as they are. Anywhere else, or for a call it was not written for, it is Hugging Face's ``sdpa``
unchanged (on CUDA a mask with ``enable_gqa`` falls back to the slow math kernel).
"""

from __future__ import annotations

import torch

NAME = "rlvr_sdpa"  # the name the model's config carries while this attention is on (never saved with it)


def cpu_gqa_sdpa(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                 attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
                 is_causal: bool | None = None, **kwargs) -> tuple[torch.Tensor, None]:
    """An attention function of Hugging Face's ``AttentionInterface``: ``sdpa``, with masked grouped-query
    attention on the CPU computed without repeating the KV heads (``enable_gqa``)."""
    if _takes_this_call(module, query, attention_mask, kwargs):
        out = torch.nn.functional.scaled_dot_product_attention(
            query, key, value, attn_mask=attention_mask, dropout_p=dropout, scale=scaling, enable_gqa=True)
        return out.transpose(1, 2).contiguous(), None  # (B, q, heads, head_dim), as sdpa returns it
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                  is_causal=is_causal, **kwargs)


def _takes_this_call(module, query: torch.Tensor, attention_mask, kwargs: dict) -> bool:
    """The one case this function computes itself: a masked call (where ``sdpa`` would repeat the KV heads)
    of a grouped-query layer on the CPU, with none of ``sdpa``'s extras (a position bias, a paged cache,
    attention weights asked for). Without a mask ``sdpa`` already passes the heads grouped."""
    return (query.device.type == "cpu" and isinstance(attention_mask, torch.Tensor)
            and getattr(module, "num_key_value_groups", 1) > 1
            and kwargs.get("position_bias") is None and kwargs.get("cache") is None
            and not kwargs.get("output_attentions", False))


def use_cpu_gqa_attention(model: torch.nn.Module) -> bool:
    """Switch a Hugging Face model from ``sdpa`` to ``cpu_gqa_sdpa`` where that changes something: a
    grouped-query model of one config (no sub-models) that runs ``sdpa`` now and lets its attention be set.
    Returns whether it switched. The model's outputs do not change (see the module's docstring); a saved
    checkpoint does not record the switch."""
    config = getattr(model, "config", None)
    if config is None or getattr(config, "_attn_implementation", None) != "sdpa" or getattr(config, "sub_configs", None):
        return False
    heads, kv_heads = getattr(config, "num_attention_heads", None), getattr(config, "num_key_value_heads", None)
    if not (isinstance(heads, int) and isinstance(kv_heads, int) and kv_heads < heads):
        return False
    can_set = getattr(model, "_can_set_attn_implementation", None)
    if can_set is None or not can_set():
        return False
    _register()
    model.set_attn_implementation(NAME)
    return config._attn_implementation == NAME


def _register() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(NAME, cpu_gqa_sdpa)
    AttentionMaskInterface.register(NAME, sdpa_mask)  # the very masks sdpa gets
