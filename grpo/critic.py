"""The critic (value model) of PPO: a one-output sequence classifier read at every token.

A critic is an ``AutoModelForSequenceClassification`` with ``num_labels=1``, the class of a reward
model (``grpo/reward_model.py``): a decoder backbone (``model.base_model_prefix``, e.g. ``model``)
and a linear head named ``score`` (hidden -> 1). A reward model reads the head at the last token; the
critic reads it at every position: the value of the state before completion token ``t`` (prompt plus
tokens ``< t``) is the head applied to the hidden state that predicts token ``t``, at absolute
position ``P + t - 1`` (:func:`critic_values`).

Being that class, a critic saves with ``save_pretrained`` and loads with ``from_pretrained``, and
starting it from a reward model is a plain ``from_pretrained`` of the reward model's folder:
backbone and head come over unchanged. Started from a policy (a causal LM folder) the backbone
loads and the head, absent there, starts at zero, so every first value is 0 (the mean of a
normalized reward) rather than noise.

A critic, like a reward model, must read the policy's token ids: a folder whose vocabulary differs
from the policy's, or whose stored head does not fit its own hidden size, is refused before
training starts (:func:`inspect_folder`, :func:`check_compatible`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from grpo.attention import use_cpu_gqa_attention
from grpo.errors import ConfigError
from grpo.logprobs import PackedBatch
from grpo.models import DTYPES, quiet_transformers, resolve_model_path

VALUE_HEAD = "score"  # the head's attribute (and weight name) in every *ForSequenceClassification of decoder models


@dataclass(frozen=True)
class FolderInfo:
    """What a model folder holds, read from its config and tensor headers (no weights loaded)."""

    path: str  # the resolved folder (or hub id)
    vocab_size: int | None
    hidden_size: int | None
    head_shape: tuple[int, ...] | None  # shape of the stored ``score.weight``; None: the folder has no head


def _stored_shapes(folder: Path) -> dict[str, tuple[int, ...]] | None:
    """Tensor shapes of a folder's safetensors files, from their headers; None if it has none."""
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        return None
    from safetensors import safe_open

    shapes: dict[str, tuple[int, ...]] = {}
    for file in files:
        with safe_open(str(file), framework="pt") as fh:
            for name in fh.keys():
                shapes[name] = tuple(fh.get_slice(name).get_shape())
    return shapes


def inspect_folder(path: str, field: str, trust_remote_code: bool = False) -> FolderInfo:
    """Config and head shape of a model folder (or hub id), without loading weights."""
    from transformers import AutoConfig

    try:
        resolved = resolve_model_path(path)
    except ConfigError as exc:  # its message speaks of model.path; say which field it was
        raise ConfigError(f"config field '{field}' = {path!r}: {exc}") from None
    try:
        config = AutoConfig.from_pretrained(resolved, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"config field '{field}' = {path!r}: cannot read its config ({exc}). Give a model folder "
                          "with config.json and weights") from None
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    shapes = _stored_shapes(Path(resolved)) if Path(resolved).is_dir() else None
    head = shapes.get(f"{VALUE_HEAD}.weight") if shapes is not None else None
    return FolderInfo(path=resolved, vocab_size=getattr(text, "vocab_size", None),
                      hidden_size=getattr(text, "hidden_size", None), head_shape=head)


def check_compatible(info: FolderInfo, field: str, policy_vocab_size: int, *, role: str) -> None:
    """Refuse a reward model or critic folder that cannot read the policy's tokens or whose head does not fit.

    ``role`` names the model in the message ("reward model", "critic").
    """
    if info.vocab_size is not None and info.vocab_size != policy_vocab_size:
        raise ConfigError(
            f"config field '{field}' = {info.path!r}: the {role} has a vocabulary of {info.vocab_size} tokens, the "
            f"policy {policy_vocab_size}; it must read the policy's token ids. Fix: build the {role} from the "
            "policy (same tokenizer), e.g. `rlvr rm` with model.path set to the policy")
    if info.head_shape is not None and info.head_shape != (1, info.hidden_size):
        raise ConfigError(
            f"config field '{field}' = {info.path!r}: its value head '{VALUE_HEAD}.weight' has shape "
            f"{list(info.head_shape)}, but a one-output head on its hidden size {info.hidden_size} is "
            f"[1, {info.hidden_size}] (hidden size or number of labels does not match). Fix: point {field} at a "
            "reward model or critic saved with num_labels=1, or at a policy folder for a fresh head")


def _load(path: str, field: str, dtype: str, trust_remote_code: bool):
    from transformers import AutoModelForSequenceClassification

    quiet_transformers()
    try:
        return AutoModelForSequenceClassification.from_pretrained(
            path, num_labels=1, dtype=DTYPES[dtype], trust_remote_code=trust_remote_code, output_loading_info=True)
    except (OSError, RuntimeError, ValueError) as exc:
        raise ConfigError(f"config field '{field}' = {path!r}: cannot load it as a one-output "
                          f"AutoModelForSequenceClassification ({str(exc).splitlines()[0]})") from None


def head_of(model) -> torch.nn.Linear:
    head = getattr(model, VALUE_HEAD, None)
    if not isinstance(head, torch.nn.Linear):
        raise ConfigError(f"{type(model).__name__} has no linear head '{VALUE_HEAD}'; the reward model and critic "
                          "must be decoder *ForSequenceClassification models (Llama, Qwen2, Mistral, ...)")
    return head


def load_critic(info: FolderInfo, field: str, dtype: str = "float32", trust_remote_code: bool = False):
    """``(critic, fresh_head)``: the value model from a reward model / critic folder (its head kept) or from a
    policy folder (``fresh_head`` True: the head, absent there, is set to zero)."""
    model, loading = _load(info.path, field, dtype, trust_remote_code)
    use_cpu_gqa_attention(model)  # the same values, without copying a GQA model's KV heads on the CPU
    head = head_of(model)
    fresh = f"{VALUE_HEAD}.weight" in loading["missing_keys"]
    if fresh:
        with torch.no_grad():
            head.weight.zero_()
            if head.bias is not None:
                head.bias.zero_()
    return model.train(), fresh


def _backbone(model) -> torch.nn.Module:
    return getattr(model, model.base_model_prefix)


def critic_values(critic, batch: PackedBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token values of a packed batch, and each row's value after its last real token.

    ``values[b, t]`` = V(s_t), the state before completion token ``t``: the head at the hidden state
    of absolute position ``P + t - 1`` (the one that predicts token ``t``). ``final[b]`` = V(s_L),
    the head at the last real token's own position ``P + L_b - 1``: the bootstrap value of a
    completion cut at the length limit (``rlhf_losses.gae``).

    Returns:
        ``(values, final)``: (B, T) with grad where the critic has it, and (B,).
    """
    width_c = batch.completion_ids.shape[1]
    hidden = _backbone(critic)(
        input_ids=batch.input_ids, attention_mask=batch.attention_mask, position_ids=batch.position_ids,
        use_cache=False,
    ).last_hidden_state[:, -(width_c + 1):]  # (B, T + 1, H): positions P - 1 .. P + T - 1
    head = head_of(critic)
    all_values = head(hidden.to(head.weight.dtype)).squeeze(-1).float()  # (B, T + 1)
    lengths = batch.completion_mask.sum(-1).long()  # (B,) L_b
    final = all_values.gather(1, lengths.unsqueeze(1)).squeeze(1)  # (B,) position P + L_b - 1
    return all_values[:, :width_c], final


def model_vocab_size(model: Any) -> int:
    """Rows of the model's input embedding: the token ids it can read."""
    return int(model.get_input_embeddings().weight.shape[0])


class ValueModel(torch.nn.Module):
    """The critic with :func:`critic_values` as its ``forward``: ``values, final = value_model(batch)``.

    ``critic_values`` runs the backbone and the head one after the other; DDP and FSDP2 act only on
    a module's own ``forward`` (DDP readies its gradient sync there; FSDP2's root unit gathers the
    embeddings, final norm and head there), so PPO trains this module, and a run of several
    processes wraps it like the policy. ``save_pretrained`` writes the critic's own folder.
    """

    def __init__(self, critic: torch.nn.Module):
        super().__init__()
        self.critic = critic
        self._no_split_modules = getattr(critic, "_no_split_modules", None)  # the blocks FSDP2 shards one by one

    def forward(self, batch: PackedBatch) -> tuple[torch.Tensor, torch.Tensor]:
        values, final = critic_values(self.critic, batch)
        return values.clone(), final  # not a view: FSDP2 hooks the output for backward, which a view can lose

    def save_pretrained(self, folder: str | Path, state_dict: dict[str, torch.Tensor] | None = None,
                        **kwargs: Any) -> None:
        """The critic's Hugging Face folder; ``state_dict`` (consolidated weights) under this module's names."""
        if state_dict is not None:
            state_dict = {k.removeprefix("critic."): v for k, v in state_dict.items()}
        self.critic.save_pretrained(folder, state_dict=state_dict, **kwargs)
