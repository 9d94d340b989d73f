"""Mixed precision: a float32 model whose matrix products run in bfloat16 (autocast), the weights, the
optimizer and the gradients staying float32 (what TRL's ``bf16=True`` and OpenRLHF's ``--bf16`` do).

``model.compute_dtype`` chooses it: ``bfloat16`` on, ``float32`` off, ``auto`` on for a model of at least
``AUTO_MIN_PARAMS`` parameters on hardware with native bfloat16 (a CPU with AMX or AVX512-BF16, or a CUDA
GPU that supports it). There the step is mostly matrix products, which bfloat16 runs about 2x (AVX512-BF16)
to 4-5x (AMX) faster. Smaller models stay float32 under ``auto``: they are the toy models of the tests and
demos, whose exactness checks and published figures are float32 (bfloat16 speeds them too, by about a
quarter of the update; ``bench/RESULTS.md``).

The LM head stays in float32: the log-probs of the sampled tokens, and so the PPO ratio and the
sampler-trainer agreement probe, keep float32 precision in their last matrix product (bfloat16 keeps 8
significant bits: a logit between 8 and 16 would be rounded by up to 0.03).
"""

from __future__ import annotations

import contextlib
import weakref
from typing import Iterator

import torch

# auto's line between toy models (float32: exact, as the tests and demos expect) and real ones (the same
# line as the rollout engine's auto choice)
AUTO_MIN_PARAMS = 30_000_000


def resolve_compute_dtype(setting: str, param_dtype: str, num_params: int, device_type: str,
                          cpu_bf16: bool | None) -> torch.dtype | None:
    """The autocast dtype for ``model.compute_dtype = setting`` (None: compute in the parameters' dtype).

    ``device_type``: where the model computes ("cpu" or "cuda"); ``cpu_bf16``: whether the CPU has native
    bfloat16 instructions (None: cannot tell). Raises ``ValueError`` for ``bfloat16`` where the hardware
    would emulate it. ``auto`` says yes only where native support is known.
    """
    if setting == "float32" or param_dtype != "float32":
        return None
    native = torch.cuda.is_bf16_supported() if device_type == "cuda" else cpu_bf16
    if setting == "bfloat16":
        if native is False:
            where = "GPU" if device_type == "cuda" else "CPU (no avx512_bf16 or amx_bf16 in /proc/cpuinfo)"
            raise ValueError(f"config field 'model.compute_dtype' = 'bfloat16': this {where} has no native "
                             "bfloat16, so torch would emulate it, slower than float32: set model.compute_dtype=float32")
        return torch.bfloat16
    return torch.bfloat16 if num_params >= AUTO_MIN_PARAMS and native is True else None


def use_compute_dtype(model: torch.nn.Module, dtype: torch.dtype) -> None:
    """Make every forward of ``model`` (a training pass, a ``generate`` step, a DDP/FSDP wrapper's call)
    run under ``torch.autocast(dtype)``, except its output embedding (the LM head), which stays float32.

    Done with forward hooks rather than a wrapped ``forward``, so wrappers of the model keep it.
    """
    _autocast_hooks(model, dtype)
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is not None:
        _autocast_hooks(head, None)
    _COMPUTE_DTYPES[model] = dtype


def compute_dtype_of(model: torch.nn.Module) -> torch.dtype | None:
    """The autocast dtype ``use_compute_dtype`` gave ``model`` (None: none)."""
    return _COMPUTE_DTYPES.get(model)


@contextlib.contextmanager
def compute_autocast(model: torch.nn.Module) -> Iterator[None]:
    """Autocast over a whole ``generate`` call: the weights are cast to bfloat16 once for all its decode
    steps instead of once a step (autocast keeps its casts until its outermost region ends; the weights
    do not change inside one ``generate``). A no-op for a model without a compute dtype."""
    dtype = compute_dtype_of(model)
    if dtype is None:
        yield
        return
    with torch.autocast(_device_type(model), dtype=dtype):
        yield


_COMPUTE_DTYPES: "weakref.WeakKeyDictionary[torch.nn.Module, torch.dtype]" = weakref.WeakKeyDictionary()


def _device_type(module: torch.nn.Module) -> str:
    param = next(module.parameters(), None)
    return param.device.type if param is not None else "cpu"


def _autocast_hooks(module: torch.nn.Module, dtype: torch.dtype | None) -> None:
    """Hooks that run ``module``'s forward under autocast in ``dtype`` (None: autocast off). The exit hook
    runs even when the forward raises, so a failed pass leaves no autocast state behind."""
    open_regions: list[torch.autocast] = []  # a stack: a module may be called inside its own forward

    def enter(mod, args, kwargs):
        region = (torch.autocast(_device_type(mod), dtype=dtype) if dtype is not None
                  else torch.autocast(_device_type(mod), enabled=False))
        region.__enter__()
        open_regions.append(region)

    def leave(mod, args, kwargs, output):
        if open_regions:
            open_regions.pop().__exit__(None, None, None)

    module.register_forward_pre_hook(enter, with_kwargs=True)
    module.register_forward_hook(leave, with_kwargs=True, always_call=True)
