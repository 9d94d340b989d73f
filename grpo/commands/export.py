"""``rlvr export``: a run's checkpoint as a standalone model folder, LoRA adapters merged on request.

``--model`` takes a run folder (its newest complete checkpoint) or a checkpoint folder. The output
holds no trainer state (optimizer, RNG): it is for evaluation, serving and sharing.

* A LoRA checkpoint with ``--merge``: base model + adapters merged into one plain model
  (W + (alpha / r) B A), which ``AutoModelForCausalLM`` and vLLM load without peft.
* A LoRA checkpoint without ``--merge``: the adapter alone (``adapter_model.safetensors`` +
  ``adapter_config.json``) and the tokenizer; loading it needs the base model it names.
* A full fine-tuning checkpoint: its model and tokenizer as they are (there is nothing to merge).
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

from grpo.config import ConfigError, ModelConfig

TRAINER_FILES = ("trainer_state.pt", "trainer_state.json", "COMPLETE")  # resume-only files left out of an export


def add_export_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, metavar="RUN_OR_CHECKPOINT",
                   help="a run folder (its newest complete checkpoint) or a checkpoint folder")
    p.add_argument("--output", required=True, metavar="DIR", help="the model folder to write (must not exist yet)")
    p.add_argument("--merge", action="store_true",
                   help="merge LoRA adapters into the base model's weights: a plain model folder that needs no peft")
    p.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32",
                   help="weight dtype of a merged model (default float32)")


def export_model(model: str, output: str | Path, *, merge: bool = False, dtype: str = "float32") -> Path:
    """Write the checkpoint ``model`` resolves to as a standalone folder ``output``; returns it."""
    from grpo.checkpoint import share_like_umask
    from grpo.lora import is_adapter_folder
    from grpo.models import is_gguf, load_policy, resolve_model_path

    out = Path(output)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"--output {str(out)!r} exists and is not empty; choose a new folder")
    if is_gguf(model):
        raise ConfigError(f"--model {model!r} is a .gguf file: rlvr convert --gguf {model} --output DIR writes it "
                          "as a model folder")
    source = Path(resolve_model_path(model))
    if not source.is_dir():
        raise ConfigError(f"--model {model!r} is not a local model, run or checkpoint folder")
    tmp = out.parent / f".tmp-{out.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        if is_adapter_folder(source) and merge:
            merged, tokenizer = load_policy(ModelConfig(path=str(source), dtype=dtype))  # no lora: merged on load
            merged.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
        else:  # nothing to compute: the checkpoint's own files, less the trainer state
            shutil.copytree(source, tmp, ignore=shutil.ignore_patterns(*TRAINER_FILES))
        share_like_umask(tmp)
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.exists():
            out.rmdir()  # empty, checked above
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def run_from_args(args: argparse.Namespace) -> int:
    from grpo.lora import is_adapter_folder
    from grpo.models import resolve_model_path

    out = export_model(args.model, args.output, merge=args.merge, dtype=args.dtype)
    source = resolve_model_path(args.model)
    if is_adapter_folder(source):
        what = "base model + LoRA adapters, merged" if args.merge else "LoRA adapters (add --merge for a plain model)"
    else:
        what = "full model (no adapters to merge)" if args.merge else "full model"
    print(f"rlvr export: {source} -> {out} ({what})")
    return 0
