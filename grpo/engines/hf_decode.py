"""Sampling from a Llama-family model without ``generate``: its forward pass written out in tensor calls.

On a small model on the CPU, a decode step of Hugging Face ``generate`` is mostly Python and small
operator calls, not arithmetic: on the peers' 2M-parameter Qwen2 (64 rows, 2 layers) the step's matrix
products take 2.7 ms of ~8 ms, and the rest is ~230 operator calls (the modules' forwards, the masks
built anew each step, the rotary table, the cache classes) plus ``generate``'s own bookkeeping
(bench/RESULTS.md). This module runs the same model with the same weights in fewer calls: the query, key
and value projections as one matrix product and gate and up as one (models up to ``FUSE_MAX_PARAMS``),
the rotary embedding of queries and keys at once from a table made once, the KV cache as plain tensors
grown a block at a time, and each distinct prompt read once however many samples it gets.

It takes the models whose forward it reproduces in arithmetic (``unsupported_reason`` gives None):
Hugging Face's ``LlamaForCausalLM`` and ``Qwen2ForCausalLM`` (SmolLM2, Qwen2.5, Llama 2/3 and their like)
with full attention, SiLU, and a rotary scaling that does not change with the length seen (the model's
own rotary module computes the angles). Anything else (another architecture, sliding-window attention,
dynamic NTK or LongRoPE scaling, LoRA adapters, a sharded or offloaded policy) samples through
``generate``. Tested against ``generate`` (tests/test_hf_decode.py): the same next-token scores to
rounding, the same tokens under the same seed.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

_CLASSES = ("LlamaForCausalLM", "Qwen2ForCausalLM")


def unsupported_reason(model: torch.nn.Module) -> str | None:
    """Why ``sample`` cannot run ``model`` (None: it can)."""
    name = type(model).__name__
    if name not in _CLASSES:
        return f"{name} is not one of {', '.join(_CLASSES)}"
    config = model.config
    if getattr(config, "hidden_act", None) != "silu":
        return f"hidden_act {config.hidden_act!r} (only silu)"
    if getattr(config, "use_sliding_window", False) or any(
            t != "full_attention" for t in (getattr(config, "layer_types", None) or ())):
        return "sliding-window attention"
    if getattr(config, "pretraining_tp", 1) not in (None, 1):
        return "pretraining_tp > 1"
    if getattr(config, "mlp_bias", False):
        return "an MLP with biases"
    rope_type = str(getattr(getattr(getattr(model, "model", None), "rotary_emb", None), "rope_type", "default"))
    if "dynamic" in rope_type or rope_type == "longrope":
        return f"a rotary embedding that changes with the length seen ({rope_type})"
    base = getattr(model, "model", None)
    layers = getattr(base, "layers", None)
    if layers is None or not hasattr(base, "rotary_emb") or not hasattr(model, "lm_head"):
        return "an unexpected module layout"
    for layer in layers:
        attn, mlp = layer.self_attn, layer.mlp
        parts = (attn.q_proj, attn.k_proj, attn.v_proj, attn.o_proj, mlp.gate_proj, mlp.up_proj, mlp.down_proj)
        if any(type(p) is not torch.nn.Linear for p in parts):  # LoRA layers, quantized layers
            return "its projections are not plain Linear layers (adapters or quantization)"
    if any(type(p.data).__name__ == "DTensor" for p in model.parameters()):
        return "a sharded (FSDP) model"
    if getattr(model, "_hf_hook", None) is not None:
        return "weights offloaded by accelerate"
    return None


FUSE_MAX_PARAMS = 1_000_000_000  # above this, the projections stay separate (no concatenated copies)


class _Layer:
    """One decoder layer's weights, as the calls below use them: with ``fuse``, the query, key and value
    projections concatenated into one matrix and gate and up into another (one product each instead of
    three and two; the copies take as much memory as those weights, so only for models up to
    ``FUSE_MAX_PARAMS``); under autocast, cast to its dtype once."""

    def __init__(self, layer: torch.nn.Module, dtype: torch.dtype | None, fuse: bool):
        attn, mlp = layer.self_attn, layer.mlp

        def cast(t: torch.Tensor | None) -> torch.Tensor | None:
            return t if t is None or dtype is None else t.to(dtype)

        self.norm1, self.eps1 = layer.input_layernorm.weight, layer.input_layernorm.variance_epsilon
        self.norm2, self.eps2 = layer.post_attention_layernorm.weight, layer.post_attention_layernorm.variance_epsilon
        projections = (attn.q_proj, attn.k_proj, attn.v_proj)
        self.fused = fuse
        if fuse:
            self.qkv = [cast(torch.cat([p.weight for p in projections]))]
            biases = [p.bias for p in projections]
            self.qkv_bias = [None if all(b is None for b in biases) else cast(torch.cat(
                [b if b is not None else p.weight.new_zeros(p.weight.shape[0]) for b, p in zip(biases, projections)]))]
            self.gate_up = [cast(torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight]))]
        else:
            self.qkv = [cast(p.weight) for p in projections]
            self.qkv_bias = [cast(p.bias) for p in projections]
            self.gate_up = [cast(mlp.gate_proj.weight), cast(mlp.up_proj.weight)]
        self.o = cast(attn.o_proj.weight)
        self.o_bias = cast(attn.o_proj.bias)
        self.down = cast(mlp.down_proj.weight)
        self.scale = attn.scaling

    def project_qkv(self, x: torch.Tensor) -> torch.Tensor:
        """(..., (heads + 2 kv_heads) * d) queries, keys and values of ``x``."""
        outs = [F.linear(x, w, b) for w, b in zip(self.qkv, self.qkv_bias)]
        return outs[0] if self.fused else torch.cat(outs, dim=-1)

    def mlp(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused:
            gate, up = F.linear(x, self.gate_up[0]).chunk(2, dim=-1)
        else:
            gate, up = F.linear(x, self.gate_up[0]), F.linear(x, self.gate_up[1])
        return F.linear(F.silu(gate) * up, self.down)


def _rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """Hugging Face's Llama RMSNorm: normalized in float32, scaled by the weight in the input's dtype."""
    dtype = x.dtype
    x32 = x.float()
    x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)
    return weight * x32.to(dtype)


CACHE_BLOCK = 16  # the KV cache grows by this many slots at a time


def capacity(positions: int) -> int:
    """Slots of a cache that holds ``positions`` keys: rounded up to whole blocks."""
    return -(-positions // CACHE_BLOCK) * CACHE_BLOCK


class _Model:
    """A Llama-family causal LM's weights for one ``sample`` call, with the forward pass over a KV cache."""

    def __init__(self, model: torch.nn.Module, fuse: bool | None = None):
        """``fuse``: concatenate the projections (None: for models of up to ``FUSE_MAX_PARAMS`` parameters)."""
        config = model.config
        if fuse is None:
            fuse = sum(p.numel() for p in model.parameters()) <= FUSE_MAX_PARAMS
        autocast = torch.is_autocast_enabled(model.lm_head.weight.device.type)
        dtype = torch.get_autocast_dtype(model.lm_head.weight.device.type) if autocast else None
        base = model.model
        self.embed = base.embed_tokens.weight
        self.rotary = base.rotary_emb
        self.final_norm, self.final_eps = base.norm.weight, base.norm.variance_epsilon
        self.lm_head = model.lm_head.weight if dtype is None else model.lm_head.weight.to(dtype)
        self.layers = [_Layer(layer, dtype, fuse) for layer in base.layers]
        self.heads = config.num_attention_heads
        self.kv_heads = config.num_key_value_heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.heads
        self._table: tuple[torch.Tensor, torch.Tensor] | None = None  # (positions, d) cos, sin
        self.keys: list[torch.Tensor] = []
        self.values: list[torch.Tensor] = []

    def _cache(self, layer: int, key: torch.Tensor, value: torch.Tensor, start: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Writes (B, kv_heads, q, d) keys and values at cache slots ``start:start + q`` of ``layer``; returns
        the layer's whole cache. The cache grows ``CACHE_BLOCK`` slots at a time (zeros, which the mask
        hides), so a decode step writes in place and attention reads contiguous tensors: growing it by one
        slot a step copied the whole cache each time (a sixth of the sampling time of a small model)."""
        end = start + key.shape[2]
        if layer == len(self.keys) or end > self.keys[layer].shape[2]:
            size = capacity(end)
            grown = [t.new_zeros((t.shape[0], t.shape[1], size, t.shape[3])) for t in (key, value)]
            if layer < len(self.keys):
                old = self.keys[layer].shape[2]
                grown[0][:, :, :old] = self.keys[layer]
                grown[1][:, :, :old] = self.values[layer]
                self.keys[layer], self.values[layer] = grown
            else:
                self.keys.append(grown[0])
                self.values.append(grown[1])
        self.keys[layer][:, :, start:end] = key
        self.values[layer][:, :, start:end] = value
        return self.keys[layer], self.values[layer]

    def select_rows(self, scores: torch.Tensor | None, rows: torch.Tensor) -> torch.Tensor | None:
        """Make the cache's batch row i a copy of row ``rows[i]`` (and the scores' alike), as if each row
        had been run itself: to copy a shared prompt's row to its samples, or to drop finished rows."""
        self.keys = [k[rows] for k in self.keys]
        self.values = [v[rows] for v in self.values]
        return None if scores is None else scores[rows]

    def tabulate_angles(self, positions: int, device: torch.device) -> None:
        """Compute the rotary embedding's cosines and sines for positions 0..positions-1 once (the model's
        rotary module over them: the numbers it gives step by step), so each step only looks them up.
        (Rotary kinds that change with the length seen, dynamic NTK and LongRoPE, are left to generate.)"""
        probe = self.embed[:1, None]  # (1, 1, H): the module reads only its dtype and device
        cos, sin = self.rotary(probe, torch.arange(positions, device=device)[None])
        self._table = (cos[0], sin[0])

    def _angles(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 1, q, d) cosines and sines of the rotary embedding at (B, q) positions (``tabulate_angles``
        first)."""
        cos, sin = self._table[0][positions], self._table[1][positions]  # (B, q, d)
        return cos[:, None], sin[:, None]

    def forward(self, ids: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor, start: int) -> torch.Tensor:
        """(B, q) token ids at (B, q) positions, written to cache slots ``start:start + q``, attending as the
        boolean (B, 1, q, capacity) ``mask`` allows over the ``capacity(start + q)`` slots of the cache after the
        write. Returns the last position's (B, V) next-token scores in float32."""
        b, q = ids.shape
        d, nh, nkv = self.head_dim, self.heads, self.kv_heads
        if mask.shape[-1] != capacity(start + q):
            raise ValueError(f"hf_decode: a mask of {mask.shape[-1]} keys for a cache of {capacity(start + q)} slots")
        h = F.embedding(ids, self.embed)  # (B, q, H)
        cos, sin = self._angles(positions)  # (B, 1, q, d)
        for i, layer in enumerate(self.layers):
            x = _rms_norm(h, layer.norm1, layer.eps1)
            qkv = layer.project_qkv(x).view(b, q, nh + 2 * nkv, d).transpose(1, 2)  # (B, heads, q, d)
            qk, v = qkv[:, : nh + nkv], qkv[:, nh + nkv :]
            half = d // 2
            qk = qk * cos + torch.cat((-qk[..., half:], qk[..., :half]), dim=-1) * sin  # rotary, queries and keys at once
            query, key = qk[:, :nh], qk[:, nh:]
            keys, values = self._cache(i, key, v, start)
            att = F.scaled_dot_product_attention(query, keys, values, attn_mask=mask,
                                                 scale=layer.scale, enable_gqa=nkv != nh)  # (B, nh, q, d)
            h = h + F.linear(att.transpose(1, 2).reshape(b, q, nh * d), layer.o, layer.o_bias)
            x = _rms_norm(h, layer.norm2, layer.eps2)
            h = h + layer.mlp(x)
        last = _rms_norm(h[:, -1], self.final_norm, self.final_eps)
        return F.linear(last, self.lm_head).float()


# (b, V) float32 scores of the rows decoded, those rows' indices in the batch (None: all B) -> (B,) tokens
Pick = Callable[[torch.Tensor, "torch.Tensor | None"], torch.Tensor]
COMPACT_AT = 0.75  # finished rows leave the decoded batch once at most this share of it is left unfinished
Stop = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (ids so far, scores) -> (B,) bool: row done


@torch.inference_mode()
def sample(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, max_new_tokens: int,
           pick: Pick, stop: Stop, pad_id: int) -> torch.Tensor:
    """Decode up to ``max_new_tokens`` after left-padded ``input_ids`` (B, W), as ``generate`` does: each
    step's token from ``pick``, a finished row continuing with ``pad_id``, the loop ending when ``stop``
    has ended every row. Returns the (B, W + T) sequences."""
    reason = unsupported_reason(model)
    if reason is not None:
        raise ValueError(f"hf_decode.sample: this model cannot be decoded here: {reason}")
    b, width = input_ids.shape
    device = input_ids.device
    net = _Model(model)
    # a prompt sampled n times is read once: its keys and values are computed for one row, then copied
    rows, inverse = torch.unique(torch.cat((input_ids, attention_mask.long()), dim=1), dim=0, return_inverse=True)
    shared = rows.shape[0] < b
    prefill_ids, prefill_valid = (rows[:, :width], rows[:, width:].bool()) if shared else (input_ids, attention_mask.bool())
    valid = attention_mask.bool()
    # keys attention may read: the prompts' real tokens now, each new token's slot once it is written
    keys_ok = torch.zeros((b, capacity(width + max_new_tokens)), dtype=torch.bool, device=device)
    keys_ok[:, :width] = valid
    # positions as generate counts them: from the first real token; padding at 1
    positions = (attention_mask.long().cumsum(-1) - 1).masked_fill(~valid, 1)
    prefill_positions = (prefill_valid.long().cumsum(-1) - 1).masked_fill(~prefill_valid, 1)
    causal = torch.ones((width, width), dtype=torch.bool, device=device).tril()
    # a padding query attends to itself, so its keys and values stay finite (a row of the mask all False
    # would give NaN, and NaN times a zero attention weight is still NaN in the real rows)
    prefill_mask = torch.zeros((prefill_ids.shape[0], 1, width, capacity(width)), dtype=torch.bool, device=device)
    prefill_mask[:, 0, :, :width] = (causal & prefill_valid[:, None, :]) | torch.eye(width, dtype=torch.bool, device=device)
    sequences = torch.full((b, width + max_new_tokens), pad_id, dtype=torch.long, device=device)
    sequences[:, :width] = input_ids
    unfinished = torch.ones(b, dtype=torch.bool, device=device)
    net.tabulate_angles(int(positions.max()) + max_new_tokens + 1, device)
    scores = net.forward(prefill_ids, prefill_positions, prefill_mask, 0)
    if shared:
        scores = net.select_rows(scores, inverse)
    next_position = positions[:, -1:] + 1  # (B, 1) of the rows decoded
    length = width
    active: torch.Tensor | None = None  # the batch rows still decoded (None: all)
    for step in range(max_new_tokens):
        tokens = pick(scores, active)  # (B,): padding in the rows no longer decoded
        tokens = torch.where(unfinished, tokens, pad_id)
        sequences[:, length] = tokens
        length += 1
        unfinished &= ~stop(sequences[:, :length], scores)
        if step + 1 == max_new_tokens:
            break
        left = int(unfinished.sum())
        if left == 0:
            break
        decoded = b if active is None else active.shape[0]
        if left <= COMPACT_AT * decoded:  # drop the finished rows from the batch
            keep = unfinished.nonzero()[:, 0] if active is None else unfinished[active].nonzero()[:, 0]
            active = keep if active is None else active[keep]
            keys_ok, next_position = keys_ok[keep], next_position[keep]
            net.select_rows(None, keep)
        keys_ok[:, length - 1] = True
        rows_tokens = tokens if active is None else tokens[active]
        scores = net.forward(rows_tokens[:, None], next_position, keys_ok[:, None, None, : capacity(length)], length - 1)
        next_position = next_position + 1
    return sequences[:, :length]
