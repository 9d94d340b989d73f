"""Several processes on torch.distributed: ranks, reductions, sharding the policy, sharded state, weight streams.

``torchrun --nproc_per_node N -m grpo.cli train ...`` starts N copies of the trainer; this module is
what makes them one run. A run started without torchrun (no ``WORLD_SIZE`` > 1 in the environment)
creates no process group, and every function here is then the identity of one process.

* ``init_distributed``: reads torchrun's variables (a missing one is an error that names it), joins
  the process group (``nccl`` on CUDA, ``gloo`` on CPU) with a collective deadline, and gives each
  rank of a node its share of the node's cores: torch threads and the sandbox pool (which sizes
  itself from ``sched_getaffinity``) follow.
* Reductions (``sum_over_ranks``, ``max_over_ranks``, ``gather_objects``, ``any_rank``): what the
  trainer needs to make N ranks' numbers those of one process with the whole batch.
* ``wrap_policy``: FSDP2 (``fully_shard`` on each decoder layer, then the root; optional bfloat16
  compute and CPU offload) or DDP; gradients are SUMMED over ranks, because every rank's loss is
  already divided by the whole batch's sequence and token counts.
* ``gathered_for_generation``: the HF engine samples with the policy module, and ranks decode
  different numbers of steps, so a per-forward all-gather would deadlock; the module is unsharded
  once for the whole of generation (every rank holds the full weights while it samples, no copy
  is kept afterwards) and resharded after.
* ``gathered_named_tensors``: the weights for a rollout engine, one FSDP unit (decoder layer) at a
  time, LoRA merged, under the base model's names; the whole model is never gathered on one rank.
* ``save_sharded_state`` / ``load_sharded_state``: model and optimizer through
  ``torch.distributed.checkpoint`` (each rank writes its shards; a load reshards to any number of
  ranks, one process included); ``full_model_state`` gathers the consolidated weights on rank 0.
"""

from __future__ import annotations

import datetime
import os
import sys
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import torch
import torch.distributed as dist

from grpo.errors import ConfigError

LAUNCH_VARIABLES: tuple[str, ...] = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


class PeerLost(RuntimeError):
    """Another rank died, hung past the collective deadline, or stopped on an error of its own."""


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands in the run."""

    rank: int = 0  # global rank, 0 .. world_size - 1
    world_size: int = 1  # processes in the run
    local_rank: int = 0  # rank on this node (the GPU it uses)
    local_world_size: int = 1  # processes on this node
    backend: str | None = None  # nccl, gloo, or None: one process, no process group
    device: str = "cpu"  # where this rank computes

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that writes the run folder."""
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1


_current = DistInfo()


def current() -> DistInfo:
    """This process's ``DistInfo`` (one process until ``init_distributed`` joined a group)."""
    return _current


# ---------------------------------------------------------------- joining the run

def launch_environment(environ: Mapping[str, str]) -> dict[str, int | str] | None:
    """torchrun's variables, checked; None for a one-process run (no ``WORLD_SIZE``, or 1)."""
    present = [v for v in LAUNCH_VARIABLES if environ.get(v, "") != ""]
    world = environ.get("WORLD_SIZE", "")
    if not present or (present == ["WORLD_SIZE"] and world == "1"):
        return None
    missing = [v for v in LAUNCH_VARIABLES if v not in present]
    if missing:
        raise ConfigError(
            f"the environment sets {', '.join(f'{v}={environ[v]}' for v in present)} but not {missing[0]}"
            f"{' (nor ' + ', '.join(missing[1:]) + ')' if len(missing) > 1 else ''}: a run of several processes "
            f"needs all of {', '.join(LAUNCH_VARIABLES)}. Start it with torchrun (torchrun --nproc_per_node N -m "
            "grpo.cli train ...), which sets them, or set them all from your cluster launcher; for one process "
            "unset them")
    values: dict[str, int | str] = {"MASTER_ADDR": environ["MASTER_ADDR"]}
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_PORT"):
        try:
            values[name] = int(environ[name])
        except ValueError:
            raise ConfigError(f"environment variable {name}={environ[name]!r} must be an integer") from None
    local_world = environ.get("LOCAL_WORLD_SIZE", "")
    values["LOCAL_WORLD_SIZE"] = int(local_world) if local_world.isdigit() else int(values["WORLD_SIZE"])
    if not 0 <= int(values["RANK"]) < int(values["WORLD_SIZE"]):
        raise ConfigError(f"RANK={values['RANK']} is outside 0 .. WORLD_SIZE-1 = {int(values['WORLD_SIZE']) - 1}")
    return values if int(values["WORLD_SIZE"]) > 1 else None


def core_share(cores: Sequence[int], local_rank: int, local_world_size: int) -> list[int]:
    """The contiguous block of ``cores`` that local rank ``local_rank`` of ``local_world_size`` owns
    (every rank gets at least one core; with fewer cores than ranks, ranks share them round-robin)."""
    cores = sorted(cores)
    if len(cores) < local_world_size:
        return [cores[local_rank % len(cores)]]
    start = local_rank * len(cores) // local_world_size
    stop = (local_rank + 1) * len(cores) // local_world_size
    return cores[start:stop]


def init_distributed(timeout_s: float = 600.0, bind_cores: bool = True, threads: int = 0,
                     environ: Mapping[str, str] | None = None) -> DistInfo:
    """Join the run's process group when torchrun started this process; a no-op for one process.

    ``timeout_s`` is the deadline of every collective: a rank that died or hangs stops the others
    with ``PeerLost`` rather than leaving them waiting. ``bind_cores`` pins this rank to its share
    of the node's cores (``threads`` > 0 still sets the torch thread count itself).
    """
    global _current
    env = launch_environment(os.environ if environ is None else environ)
    if env is None:
        return _current
    if dist.is_initialized():
        return _current
    rank, world, local_rank = int(env["RANK"]), int(env["WORLD_SIZE"]), int(env["LOCAL_RANK"])
    local_world = int(env["LOCAL_WORLD_SIZE"])
    on_gpu = torch.cuda.is_available()
    if on_gpu:
        if local_rank >= torch.cuda.device_count():
            raise ConfigError(f"LOCAL_RANK={local_rank} but this node has {torch.cuda.device_count()} GPU(s): start "
                              "at most one process per GPU (torchrun --nproc_per_node <= the GPU count)")
        torch.cuda.set_device(local_rank)
    if bind_cores and hasattr(os, "sched_setaffinity") and local_world > 1:
        mine = core_share(os.sched_getaffinity(0), local_rank, local_world)
        os.sched_setaffinity(0, mine)
        if threads <= 0:
            torch.set_num_threads(len(mine))
    backend = "nccl" if on_gpu else "gloo"
    device = f"cuda:{local_rank}" if on_gpu else "cpu"
    dist.init_process_group(backend, rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=timeout_s),
                            device_id=torch.device(device) if on_gpu else None)
    _current = DistInfo(rank=rank, world_size=world, local_rank=local_rank, local_world_size=local_world,
                        backend=backend, device=device)
    return _current


def shutdown() -> None:
    """Leave the process group (after the last collective)."""
    global _current
    if dist.is_initialized():
        dist.destroy_process_group()
    _current = DistInfo()


def planned_world_size(environ: Mapping[str, str] | None = None) -> int:
    """The number of processes torchrun started (1 without torchrun), checked, before joining the group."""
    env = launch_environment(os.environ if environ is None else environ)
    return int(env["WORLD_SIZE"]) if env is not None else 1


def check_divides(count: int, field: str, world: int) -> None:
    """Refuse a per-step count that ``world`` ranks cannot share equally (whole groups stay on one rank)."""
    if count % world:
        fits = [n for n in range(1, count + 1) if count % n == 0]
        raise ConfigError(
            f"config field '{field}' = {count} is not a multiple of the {world} processes of this run "
            f"(WORLD_SIZE={world}): each rank takes an equal share of them. Set {field} to a multiple of "
            f"{world} (e.g. {world * max(1, -(-count // world))}), or start {' or '.join(map(str, fits[-3:]))} "
            "processes")


def shard_range(count: int, rank: int, world_size: int) -> tuple[int, int]:
    """``[start, stop)`` of rank ``rank``'s contiguous share of ``count`` items (sizes differ by at most 1)."""
    return rank * count // world_size, (rank + 1) * count // world_size


# ---------------------------------------------------------------- reductions

def _collective_failed(exc: BaseException, what: str) -> PeerLost:
    return PeerLost(
        f"rank {_current.rank} of {_current.world_size}: {what} failed: another rank stopped or stopped answering "
        f"({type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else 'no detail'}). Every "
        "rank stops; the first error printed (or torchrun's summary) names the rank that failed first")


_BACKEND_MARKERS = ("gloo", "nccl", "c10d", "processgroup", "timed out waiting", "connection closed by peer",
                    "connection reset by peer")


def as_peer_lost(exc: BaseException, what: str = "a collective inside the model (FSDP/DDP)") -> PeerLost | None:
    """``exc`` as ``PeerLost`` when it is a collective that failed (also one raised deep inside FSDP's
    or DDP's own communication, which no ``collective`` block wraps); None for any other error."""
    if isinstance(exc, PeerLost):
        return exc
    if not _current.is_distributed or not isinstance(exc, (RuntimeError, dist.DistError)):
        return None
    text = str(exc).lower()
    if isinstance(exc, dist.DistError) or any(marker in text for marker in _BACKEND_MARKERS):
        return _collective_failed(exc, what)
    return None


@contextmanager
def collective(what: str) -> Iterator[None]:
    """Turn a failed collective (a dead peer, the deadline) into ``PeerLost`` naming what was waited for."""
    try:
        yield
    except PeerLost:
        raise
    except (RuntimeError, dist.DistError) as exc:  # gloo/nccl errors; DistBackendError is a RuntimeError
        if _current.is_distributed:
            raise _collective_failed(exc, what) from exc
        raise


def _tensor(values: Sequence[float]) -> torch.Tensor:
    device = _current.device if _current.backend == "nccl" else "cpu"
    return torch.tensor(list(values), dtype=torch.float64, device=device)


def sum_over_ranks(values: Sequence[float], what: str = "summing over ranks") -> list[float]:
    """Element-wise sum over ranks (float64, so counts stay exact)."""
    if not _current.is_distributed:
        return [float(v) for v in values]
    t = _tensor(values)
    with collective(what):
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.cpu().tolist()


def max_over_ranks(values: Sequence[float], what: str = "a maximum over ranks") -> list[float]:
    if not _current.is_distributed:
        return [float(v) for v in values]
    t = _tensor(values)
    with collective(what):
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t.cpu().tolist()


def any_rank(flag: bool, what: str = "agreeing to stop") -> bool:
    """True on every rank when it is true on any (e.g. a stop signal that reached one rank)."""
    return max_over_ranks([1.0 if flag else 0.0], what)[0] > 0


def gather_objects(obj: Any, what: str = "gathering from every rank") -> list[Any]:
    """``[obj of rank 0, obj of rank 1, ...]`` on every rank (pickled; for small per-sample records)."""
    if not _current.is_distributed:
        return [obj]
    out: list[Any] = [None] * _current.world_size
    with collective(what):
        dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, what: str = "hearing from rank 0") -> Any:
    """Rank 0's ``obj`` on every rank."""
    if not _current.is_distributed:
        return obj
    box = [obj]
    with collective(what):
        dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(what: str = "waiting for every rank") -> None:
    if _current.is_distributed:
        with collective(what):
            dist.barrier()


def loss_normalizers_over_ranks(mask: torch.Tensor) -> tuple[float, float]:
    """``(num_seqs, num_tokens)`` of every rank's batch together, as ``grpo.losses.loss_normalizers``
    counts them for one (rows with a real token, real tokens; each >= 1). mask: (B, T), this rank's."""
    real = mask != 0  # (B, T)
    seqs, tokens = sum_over_ranks([float(real.any(-1).sum()), float(real.sum())], "summing the loss normalizers")
    return max(seqs, 1.0), max(tokens, 1.0)


def to_float(value: torch.Tensor | float) -> float:
    """A scalar that may be a DTensor (e.g. FSDP2's gradient norm) as a Python float."""
    full = getattr(value, "full_tensor", None)
    return float(full() if full is not None else value)


@contextmanager
def gradient_sync(model: torch.nn.Module, sync: bool) -> Iterator[None]:
    """DDP sums gradients over ranks only in a backward with ``sync`` (the last micro-batch); before it,
    gradients accumulate locally. (A DDP backward would otherwise re-reduce what earlier ones summed.)"""
    from torch.nn.parallel import DistributedDataParallel

    if isinstance(model, DistributedDataParallel) and not sync:
        with model.no_sync():
            yield
    else:
        yield


# ---------------------------------------------------------------- sharding the policy

def decoder_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The repeated blocks of a transformer: modules whose class the model names in
    ``_no_split_modules`` (Hugging Face's own list of blocks that must stay whole), else the
    longest ``ModuleList``."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    names = set(getattr(base, "_no_split_modules", None) or [])
    layers = [m for m in model.modules() if type(m).__name__ in names]
    if layers:
        return layers
    lists = [m for m in model.modules() if isinstance(m, torch.nn.ModuleList)]
    if not lists:
        raise ConfigError(f"cannot find the decoder layers of {type(base).__name__} to shard; use dist.sharding=ddp")
    return list(max(lists, key=len))


def wrap_policy(model: torch.nn.Module, sharding: str, mixed_precision: bool = False,
                cpu_offload: bool = False, trainable: bool = True) -> torch.nn.Module:
    """The module the trainer runs forward/backward on: ``model`` sharded with FSDP2 (in place; the
    same module, still a Hugging Face model) or wrapped in DDP (``unwrap`` gives the model back).

    Gradients are summed over ranks, not averaged: each rank's loss is already normalized by the
    whole batch's counts, so the sum is the gradient of one process with the whole batch.
    ``trainable=False`` (a frozen reference policy) shards an inference-only copy the same way.
    """
    info = _current
    if not info.is_distributed:
        return model
    device = torch.device(info.device)
    if sharding == "ddp":
        model.to(device)
        if not trainable:
            return model  # a frozen replica needs no gradient sync
        from torch.nn.parallel import DistributedDataParallel

        ddp = DistributedDataParallel(model, device_ids=[info.local_rank] if device.type == "cuda" else None,
                                      broadcast_buffers=False)  # no collective in forward: generation stays local
        ddp.register_comm_hook(None, _sum_allreduce_hook)
        return ddp
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import CPUOffloadPolicy, MixedPrecisionPolicy, OffloadPolicy, fully_shard

    if cpu_offload and device.type != "cuda":
        raise ConfigError("config field 'dist.cpu_offload' = True: it keeps GPU weights in host memory between uses, "
                          "and this run has no GPU (its weights are in host memory already); set dist.cpu_offload=false")
    if mixed_precision and device.type == "cpu":
        from grpo.models import _read_cpuinfo, cpu_has_bf16

        if cpu_has_bf16(_read_cpuinfo()) is False:
            raise ConfigError("config field 'dist.mixed_precision' = True: this CPU has no bfloat16 instructions "
                              "(avx512_bf16 / amx_bf16), so torch would emulate them, slower than float32; set "
                              "dist.mixed_precision=false")
    mesh = init_device_mesh(device.type, (info.world_size,))
    kwargs: dict[str, Any] = {"mesh": mesh}
    if mixed_precision:
        kwargs["mp_policy"] = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    kwargs["offload_policy"] = CPUOffloadPolicy() if cpu_offload else OffloadPolicy()
    for layer in decoder_layers(model):
        fully_shard(layer, **kwargs)
    # the root unit is the module every forward enters: for a LoRA (peft) model the base model, which both
    # PeftModel.forward and generate call (a unit that first runs outside its root would become a root itself)
    fully_shard(model.get_base_model() if hasattr(model, "get_base_model") else model, **kwargs)
    if trainable:
        for unit in fsdp_units(model):  # each unit reduces its own gradients
            unit.set_gradient_divide_factor(1.0)  # sum: see the docstring
            unit.set_force_sum_reduction_for_comms(True)  # a plain SUM collective (gloo has no PREMUL_SUM)
    return model


def _sum_allreduce_hook(state, bucket):  # no annotations: DDP checks them, and this module's are strings
    """DDP gradient hook: all-reduce SUM of a ``dist.GradBucket`` (DDP's own averages over ranks)."""
    work = dist.all_reduce(bucket.buffer(), async_op=True)
    return work.get_future().then(lambda fut: fut.value()[0])


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The Hugging Face model inside a DDP wrapper (an FSDP2 module is one already)."""
    from torch.nn.parallel import DistributedDataParallel

    return model.module if isinstance(model, DistributedDataParallel) else model


def fsdp_units(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The FSDP2 units of ``model`` (each decoder layer and the root), root first; [] when not sharded."""
    from torch.distributed.fsdp import FSDPModule

    return [m for m in model.modules() if isinstance(m, FSDPModule)]


def is_sharded(model: torch.nn.Module) -> bool:
    return bool(fsdp_units(model))


@contextmanager
def gathered_for_generation(model: torch.nn.Module) -> Iterator[None]:
    """While inside, an FSDP2 module runs forward with no collective: all its units are unsharded
    once (every rank holds the full weights), and stay so however many forwards each rank runs.

    Every rank must enter (the unshard is a collective), whatever number of prompts it samples.
    A no-op for a module that is not sharded.
    """
    units = fsdp_units(model)
    if not units:
        yield
        return
    with collective("gathering the weights for generation"):
        for unit in units:
            unit.unshard()
    for unit in units:
        unit.set_reshard_after_forward(False)
    try:
        yield
    finally:
        for unit in units:
            unit.reshard()
            unit.set_reshard_after_forward(True)


def _unit_parameters(unit: torch.nn.Module, units: set[int]) -> list[tuple[str, torch.nn.Parameter]]:
    """(name relative to ``unit``, parameter) of the parameters ``unit`` itself manages: those not
    inside a nested unit; tied parameters under every name."""
    out: list[tuple[str, torch.nn.Parameter]] = []

    def walk(module: torch.nn.Module, prefix: str) -> None:
        for name, p in module._parameters.items():
            if p is not None:
                out.append((prefix + name, p))
        for name, child in module._modules.items():
            if child is not None and id(child) not in units:
                walk(child, f"{prefix}{name}.")

    walk(unit, "")
    return out


def _plain_name(name: str) -> str | None:
    """A peft parameter name under the base model's own names; None for an adapter's own tensor."""
    name = name.removeprefix("base_model.model.")
    if ".lora_" in name:
        return None
    return name.replace(".base_layer.", ".")


def _merged(unit: torch.nn.Module, name: str, param: torch.Tensor) -> torch.Tensor:
    """A copy of ``param``; a LoRA layer's base weight (``....base_layer.weight``) with the layer's
    active adapters merged in, W + (alpha / r) B A, computed from the layer's own full tensors."""
    merged = param.detach().clone()
    suffix = "base_layer.weight"
    if name == suffix or name.endswith("." + suffix):
        layer = unit.get_submodule(name[: -len(suffix)].rstrip("."))
        for adapter in getattr(layer, "active_adapters", []):
            if adapter in getattr(layer, "lora_A", {}):
                merged += layer.get_delta_weight(adapter).to(merged.dtype)
    return merged


def gathered_named_tensors(model: torch.nn.Module, prefix_of_root: str = "") -> Iterator[tuple[str, torch.Tensor]]:
    """The policy's full weights under the base model's names, one FSDP unit at a time.

    Each unit (a decoder layer; the root holds embeddings, final norm and head) is all-gathered,
    its tensors copied out (LoRA adapters merged into their base weights, adapter tensors left
    out; tied weights under every name, as vLLM needs), and resharded before the next unit: at no
    moment does a rank hold more than one unit's full weights beyond what the consumer keeps.
    A collective: every rank must consume the whole stream, in order. For a module that is not
    sharded, its parameters as they are (LoRA merged the same way).
    """
    units = fsdp_units(model)
    if not units:
        root = unwrap(model)
        for name, p in root.named_parameters(remove_duplicate=False):
            plain = _plain_name(name)
            if plain is not None:
                yield plain, _merged(root, name, p)
        return
    ids = {id(u) for u in units}
    paths = {id(m): n for n, m in model.named_modules()}
    for unit in units:
        with collective("gathering one layer's weights"):
            unit.unshard()
        try:
            base = paths[id(unit)]
            for name, p in _unit_parameters(unit, ids - {id(unit)}):
                full = f"{base}.{name}" if base else name
                plain = _plain_name(full)
                if plain is not None:
                    yield plain, _merged(unit, name, p)
        finally:
            unit.reshard()


class ShardedEngine:
    """A ``RolloutEngine`` over every rank's engine, for held-out evaluation (whose metrics need every
    sample): each rank samples its share of the prompts and every rank gets all completions, in
    prompt order. Seeds are drawn once from torch's RNG (alike on every rank: evaluation seeds it
    by step), one per prompt, so the samples do not depend on the number of ranks. Every rank must
    call ``generate`` with the same prompts."""

    def __init__(self, engine: Any):
        self.engine = engine

    def generate(self, prompt_ids: Sequence[Sequence[int]], n: int, sampling: Any,
                 seeds: Sequence[int] | None = None) -> Any:
        from grpo.engines.base import SEED_SPAN, Completions

        if seeds is None:
            base = int(torch.randint(0, SEED_SPAN - n * max(1, len(prompt_ids)), (1,)))
            seeds = [base + i * n for i in range(len(prompt_ids))]
        lo, hi = shard_range(len(prompt_ids), _current.rank, _current.world_size)
        part = self.engine.generate(list(prompt_ids[lo:hi]), n, sampling, seeds=list(seeds[lo:hi]))
        out = Completions()
        for offset, completions in gather_objects((lo, part), "gathering the held-out samples"):
            out.extend(completions, index_offset=offset)
        return out

    def load_weights(self, named_tensors: Any) -> None:
        self.engine.load_weights(named_tensors)

    def close(self) -> None:
        self.engine.close()


LAUNCH_FIELDS: tuple[str, ...] = ("world_size", "dist.sharding", "dist.cpu_offload", "dist.timeout_s", "dist.bind_cores")
"""How a run is spread over processes: a ``--resume`` may change these (the state reshards); what is
learned does not change. (``dist.mixed_precision`` changes the arithmetic, so it is not among them.)"""


def adopt_launch_settings(saved: dict[str, Any], resolved: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Take this launch's ``LAUNCH_FIELDS`` into ``saved`` (a run's config.yaml, read back) before the
    resume check compares it with ``resolved``; returns ``{field: (old, new)}`` of those that changed.
    Fields the saved config lacks (a run started before they existed) take the new value silently."""
    changes: dict[str, tuple[Any, Any]] = {}
    for dotted in (*LAUNCH_FIELDS, "dist.mixed_precision"):
        *path, key = dotted.split(".")
        source: Any = resolved
        target = saved
        for part in path:
            source = source.get(part, {})
            if not isinstance(target.get(part), dict):
                target[part] = {}
            target = target[part]
        new = source.get(key)
        if key not in target:
            target[key] = new
        elif dotted in LAUNCH_FIELDS and target[key] != new:
            changes[dotted] = (target[key], new)
            target[key] = new
    return changes


# ---------------------------------------------------------------- sharded state

def _state_options(full: bool = False):
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=full, cpu_offload=full)


def save_sharded_state(folder: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Model and optimizer state, each rank writing its own shards into ``folder`` (a collective)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    model_state, optim_state = get_state_dict(unwrap(model) if not is_sharded(model) else model, optimizer)
    with collective("writing the sharded checkpoint"):
        dcp.save({"model": model_state, "optimizer": optim_state}, checkpoint_id=str(folder))


def load_sharded_state(folder: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Read ``save_sharded_state``'s files into ``model`` and ``optimizer``, resharded to however many
    ranks this run has (one process without a process group included)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    target = unwrap(model) if not is_sharded(model) else model
    model_state, optim_state = get_state_dict(target, optimizer)
    state = {"model": model_state, "optimizer": optim_state}
    with collective("reading the sharded checkpoint"), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*assuming the intent is to load in a single process")
        dcp.load(state, checkpoint_id=str(folder))
    set_state_dict(target, optimizer, model_state_dict=state["model"], optim_state_dict=state["optimizer"])


def missing_shard_files(folder: str | Path) -> list[str]:
    """Files the sharded checkpoint's metadata names that are not in ``folder`` (a half-copied checkpoint)."""
    from torch.distributed.checkpoint import FileSystemReader

    metadata = FileSystemReader(str(folder)).read_metadata()
    named = {info.relative_path for info in (metadata.storage_data or {}).values()}
    return sorted(f for f in named if not (Path(folder) / f).is_file())


def load_full_optimizer_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                              saved: Mapping[str, Any]) -> None:
    """A one-process checkpoint's ``optimizer.state_dict()`` (parameters by index) into this run's
    optimizer, however it is sharded: the indices are the order of the trainable parameters."""
    from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict

    target = unwrap(model) if not is_sharded(model) else model
    names = [n for n, p in target.named_parameters() if p.requires_grad]
    by_name = {
        "state": {names[i]: value for i, value in saved["state"].items()},
        "param_groups": [{**group, "params": [names[i] for i in group["params"]]} for group in saved["param_groups"]],
    }
    set_optimizer_state_dict(target, optimizer, by_name, options=_state_options(full=True))


def full_model_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The consolidated weights on rank 0 (CPU), {} on the others; a collective under FSDP."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    if not is_sharded(model):
        return {k: v.detach().cpu() for k, v in unwrap(model).state_dict().items()} if _current.is_main else {}
    with collective("gathering the weights for the model folder"):
        state = get_model_state_dict(model, options=_state_options(full=True))
    if not _current.is_main:
        return {}
    # tied weights once, under the name a one-process save_pretrained keeps (lm_head follows the embeddings)
    once = {n for n, _ in model.named_parameters()} | {n for n, _ in model.named_buffers()}
    tied = {n for n, _ in model.named_parameters(remove_duplicate=False)} - once
    return {k: v for k, v in state.items() if k not in tied}


def world_size_note() -> str:
    """``torchrun --nproc_per_node N -m grpo.cli`` for messages that say how to continue a run."""
    info = _current
    if not info.is_distributed:
        return "rlvr"
    nodes = max(1, info.world_size // max(1, info.local_world_size))
    where = f" --nnodes {nodes}" if nodes > 1 else ""
    return f"torchrun{where} --nproc_per_node {info.local_world_size} -m grpo.cli"


def print_main(*args: Any, **kwargs: Any) -> None:
    """``print`` on rank 0 only (so N ranks do not say the same thing N times)."""
    if _current.is_main:
        print(*args, **kwargs)


def log_rank_error(message: str) -> None:
    """An error line that names this rank (every rank may have its own cause)."""
    tag = f"[rank {_current.rank}] " if _current.is_distributed else ""
    print(f"{tag}{message}", file=sys.stderr, flush=True)
