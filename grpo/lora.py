"""LoRA through peft: adapters on a base model, the reference policy, and weight sync under plain names.

* ``apply_lora`` puts fresh adapters on the modules ``target_modules`` names (checked first: a
  name that matches nothing is a ``ConfigError`` listing the layers the model has); only the
  adapter parameters are trainable.
* ``AdaptersDisabled`` is the reference policy of a LoRA run: the policy module itself called
  under ``disable_adapter()``, i.e. the base model, with no second copy of the weights.
* ``merged_weights`` is the weight sync's view of the policy: adapters merged into the base
  weights, streamed under exactly the names of the base model's parameters (no
  ``base_model.model.`` prefix, no ``.base_layer``, no ``lora_`` tensors; tied weights under every
  name), and restored bit for bit afterwards, also when the sync fails.
* A checkpoint of a LoRA run is peft's adapter folder (``adapter_model.safetensors`` +
  ``adapter_config.json``, whose ``base_model_name_or_path`` names the base model) plus the
  tokenizer and trainer state; ``is_adapter_folder`` / ``adapter_base_path`` read it back.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

import torch

from grpo.config import LoraConfig
from grpo.engines.base import WeightSyncError
from grpo.errors import ConfigError

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"


def is_peft_model(model) -> bool:
    try:
        from peft import PeftModel
    except ImportError:
        return False
    return isinstance(model, PeftModel)


def is_adapter_folder(path: str | Path) -> bool:
    """A folder holding a peft adapter (and no full model): a checkpoint of a LoRA run."""
    p = Path(path)
    return (p / ADAPTER_CONFIG).is_file() and not (p / "config.json").is_file()


def adapter_base_path(folder: str | Path) -> str:
    """The base model an adapter folder was trained on: a local path (relative ones are taken from the
    folder, then from the working directory) or a hub id."""
    config = json.loads((Path(folder) / ADAPTER_CONFIG).read_text())
    base = config.get("base_model_name_or_path")
    if not base:
        raise ConfigError(f"{folder}/{ADAPTER_CONFIG} names no base_model_name_or_path; set it to the base model's "
                          "folder or hub id")
    beside = Path(folder) / base
    return str(beside) if not Path(base).is_absolute() and beside.exists() else base


def _require_peft():
    try:
        import peft
    except ImportError as exc:
        raise ConfigError("model.lora needs peft, which is not installed: pip install 'peft>=0.14', or set "
                          "model.lora: null for full fine-tuning") from exc
    return peft


# ---------------------------------------------------------------- putting adapters on a model

def _adaptable_layers(model: torch.nn.Module) -> dict[str, torch.nn.Module]:
    """{module path: module} of the layers LoRA can adapt (linear and embedding layers)."""
    from transformers.pytorch_utils import Conv1D

    kinds = (torch.nn.Linear, torch.nn.Embedding, Conv1D)
    return {name: m for name, m in model.named_modules() if isinstance(m, kinds)}


def check_target_modules(model: torch.nn.Module, target_modules: Iterable[str]) -> list[str]:
    """Module paths each target matches (peft's rule: the path is the name or ends in ``.name``), or a
    ``ConfigError`` naming the targets that match no adaptable layer and listing those the model has."""
    layers = _adaptable_layers(model)
    targets = list(target_modules)

    def matches(path: str, target: str) -> bool:
        return path == target or path.endswith("." + target)

    missing = [t for t in targets if not any(matches(path, t) for path in layers)]
    if missing:
        names = sorted({path.rsplit(".", 1)[-1] for path in layers})
        others = sorted({path.rsplit(".", 1)[-1] for path, m in model.named_modules()
                         if path and any(matches(path, t) for t in missing)})
        example = [n for n in names if n.endswith("proj")][:2] or names[:2]
        kind = f" ({', '.join(others)} {'is' if len(others) == 1 else 'are'} not linear or embedding layers)" \
            if others else ""
        raise ConfigError(
            f"config field 'model.lora.target_modules' = {targets}: {', '.join(missing)} "
            f"{'matches' if len(missing) == 1 else 'match'} no linear or embedding layer of this model "
            f"({type(model).__name__}){kind}. Its layers that LoRA can adapt are named: {', '.join(names)}; "
            f"set target_modules to some of them, e.g. [{', '.join(example)}]")
    return sorted(path for path in layers if any(matches(path, t) for t in targets))


def _check_untied(model: torch.nn.Module, paths: list[str]) -> None:
    """An adapter on one of two tied layers (embed_tokens / lm_head) would make their weights differ,
    which a model that stores them once (vLLM, save_pretrained) cannot hold."""
    owners: dict[int, list[str]] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        owners.setdefault(p.data_ptr(), []).append(name.removesuffix(".weight"))
    for path in paths:
        weight = getattr(model.get_submodule(path), "weight", None)
        tied = [n for n in owners.get(weight.data_ptr(), []) if n != path] if weight is not None else []
        if tied:
            raise ConfigError(
                f"config field 'model.lora.target_modules': {path!r} shares its weight with {tied[0]!r} (tied word "
                "embeddings); an adapter on one of them cannot be merged into the one weight both use. Leave "
                f"{path.rsplit('.', 1)[-1]} out of target_modules")


def apply_lora(model: torch.nn.Module, cfg: LoraConfig, base_name_or_path: str):
    """Fresh adapters on ``model`` (modified in place, wrapped in a ``PeftModelForCausalLM``): B = 0, so the
    policy starts equal to the base model; only adapter parameters require gradients."""
    peft = _require_peft()
    paths = check_target_modules(model, cfg.target_modules)
    _check_untied(model, paths)
    config = peft.LoraConfig(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout,
                             target_modules=list(cfg.target_modules), task_type="CAUSAL_LM", bias="none")
    peft_model = peft.get_peft_model(model, config)
    # written into every checkpoint's adapter_config.json: where resume, eval and export find the base
    peft_model.peft_config["default"].base_model_name_or_path = base_name_or_path
    return peft_model


def attach_adapter(model: torch.nn.Module, folder: str | Path, cfg: LoraConfig | None):
    """The adapter saved in ``folder`` on ``model``. With ``cfg`` (training): trainable, and its settings
    must be ``cfg``'s. Without (evaluation, export, full fine-tuning from a LoRA checkpoint): merged into
    a plain model."""
    peft = _require_peft()
    saved = json.loads((Path(folder) / ADAPTER_CONFIG).read_text())
    if cfg is not None:
        have = {"r": saved.get("r"), "alpha": saved.get("lora_alpha"),
                "target_modules": sorted(saved.get("target_modules") or [])}
        want = {"r": cfg.r, "alpha": cfg.alpha, "target_modules": sorted(cfg.target_modules)}
        if have != want:
            raise ConfigError(
                f"model.path {str(folder)!r} holds an adapter with {have}, but model.lora asks for {want}. Set "
                f"model.lora to the saved adapter's settings to continue training it, or merge it first (rlvr export "
                "--merge) and train new adapters on the merged model")
    peft_model = peft.PeftModel.from_pretrained(model, str(folder), is_trainable=cfg is not None)
    return peft_model if cfg is not None else peft_model.merge_and_unload()


# ---------------------------------------------------------------- the reference policy

class AdaptersDisabled:
    """The reference policy of a LoRA run: the policy module called with its adapters switched off (the
    base model), in eval mode, like a module. It holds no weights of its own."""

    def __init__(self, model):
        self.model = model

    def __call__(self, *args, **kwargs):
        was_training = self.model.training
        self.model.eval()
        try:
            with self.model.disable_adapter():
                return self.model(*args, **kwargs)
        finally:
            self.model.train(was_training)


# ---------------------------------------------------------------- weight sync under plain names

def _tuner_layers(model) -> dict[str, torch.nn.Module]:
    """{module path in the base model: LoRA layer} of a peft model."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    return {name: m for name, m in model.get_base_model().named_modules() if isinstance(m, BaseTunerLayer)}


def plain_named_parameters(model) -> list[tuple[str, torch.Tensor]]:
    """The parameters under the base model's own names, tied ones under every name, in its order.

    A peft model's base weights appear as ``P.base_layer.weight`` under a LoRA layer ``P``: they go
    out as ``P.weight``; the adapters' own tensors (``P.lora_A...``) are left out. Outside
    ``merged_weights`` a LoRA layer's tensor here is its base weight alone.
    """
    if not is_peft_model(model):
        return list(model.named_parameters(remove_duplicate=False))
    layers = _tuner_layers(model)
    out = []
    for name, param in model.get_base_model().named_parameters(remove_duplicate=False):
        parts = name.split(".")
        layer = next((".".join(parts[:k]) for k in range(1, len(parts)) if ".".join(parts[:k]) in layers), None)
        if layer is None:
            out.append((name, param))
        elif parts[layer.count(".") + 1] == "base_layer":
            out.append((layer + name[len(layer) + len(".base_layer"):], param))
    return out


@contextmanager
def merged_weights(model) -> Iterator[Iterable[tuple[str, torch.Tensor]]]:
    """The policy's weights for a rollout engine: (plain name, tensor) pairs of the model as it samples.

    A plain model gives its parameters as they are. A peft model has its adapters merged into the base
    weights (W + (alpha / r) B A) for the duration of the block; afterwards the adapters are unmerged
    and the base weights restored from a copy taken before, bit for bit (subtracting the merged update
    again would leave rounding error behind at every sync, and grow it in bf16), also when the block
    raises. The copy costs the memory of the adapted layers' base weights.
    """
    if not is_peft_model(model):
        yield model.named_parameters(remove_duplicate=False)
        return
    bases = [layer.get_base_layer().weight for layer in _tuner_layers(model).values()]
    saved = [w.detach().clone() for w in bases]
    try:
        with torch.no_grad():
            model.merge_adapter()
        yield plain_named_parameters(model)
    finally:
        import warnings

        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # "Already unmerged" when the merge itself failed
            model.unmerge_adapter()
            for w, copy in zip(bases, saved):
                w.copy_(copy)


def check_plain_names(names: Iterable[str]) -> None:
    """Refuse a weight sync under a peft model's own parameter names (``base_model.model.…``,
    ``….base_layer.weight``, ``….lora_A.…``): vLLM skips names its model lacks, so the policy's weights
    would be left behind without a word."""
    peft_names = [n for n in names if n.startswith("base_model.model.") or ".base_layer." in n or ".lora_" in n]
    if peft_names:
        raise WeightSyncError(
            f"load_weights got a LoRA (peft) model's own parameter names, e.g. {peft_names[0]!r}, which the engine "
            "would not load. Send the merged weights under the base model's names: "
            "`with grpo.lora.merged_weights(model) as named_tensors: engine.load_weights(named_tensors)`")
