"""Several processes on torch.distributed (grpo/distributed.py): 2 ranks on the CPU with gloo.

The runs launched here are the real ``rlvr`` command line under ``torchrun --nproc_per_node 2`` on a
tiny model, 2-3 steps each. A 2-rank run must give the weights, metrics and samples of one process
with the same global batch: each prompt is sampled with its own seed (``rollout.seeding``), so the
samples themselves are equal, and the update is checked through the whole loop, not on a fixed batch.
"""

import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from grpo import distributed
from grpo.checkpoint import latest_checkpoint, sharded_state_of
from grpo.errors import ConfigError

HERE = Path(__file__).parent
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
       "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
for name in distributed.LAUNCH_VARIABLES + ("LOCAL_WORLD_SIZE",):
    ENV.pop(name, None)

TINY = ["--set", "algo.prompts_per_step=4", "--set", "algo.group_size=4", "--set", "rollout.max_new_tokens=8",
        "--set", "optim.lr=1e-3", "--set", "optim.micro_batch_size=3", "--set", "rollout.engine=hf",
        "--set", "verifier=plugin_verifiers:digit_share", "--set", "save_every=1", "--set", "keep_checkpoints=5",
        "--set", "algo.kl_coef=0.05",  # a reference policy, sharded like the policy
        "--set", "rollout.seeding=per_prompt", "--no-progress"]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
            "-m", "grpo.cli"]


def rlvr(*args, launcher=(sys.executable, "-m", "grpo.cli"), check=True, env=ENV):
    proc = subprocess.run([*launcher, *args], capture_output=True, text=True, env=env, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args[:1])} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return proc


def weights(run: Path, step: int) -> dict[str, torch.Tensor]:
    return load_file(str(run / "checkpoints" / f"step-{step}" / "model.safetensors"))


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def learned(metrics: dict) -> dict:
    """What a step computed, without what depends on the machine or the launch."""
    return {k: v for k, v in metrics.items() if not k.startswith(("time/", "memory/", "dist/"))}


def assert_same_weights(a: dict, b: dict, atol: float = 1e-5) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], atol=atol), (key, float((a[key] - b[key]).abs().max()))


# ---------------------------------------------------------------- pure parts, one process


def test_launch_environment_names_what_is_missing():
    assert distributed.launch_environment({}) is None
    assert distributed.launch_environment({"WORLD_SIZE": "1"}) is None
    full = {"RANK": "1", "LOCAL_RANK": "1", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500",
            "LOCAL_WORLD_SIZE": "2"}
    assert distributed.launch_environment(full)["RANK"] == 1
    with pytest.raises(ConfigError, match="but not MASTER_PORT.*torchrun"):
        distributed.launch_environment({k: v for k, v in full.items() if k != "MASTER_PORT"})
    with pytest.raises(ConfigError, match="not LOCAL_RANK"):
        distributed.launch_environment({"WORLD_SIZE": "2", "RANK": "0"})
    with pytest.raises(ConfigError, match="RANK=2 is outside"):
        distributed.launch_environment({**full, "RANK": "2"})
    with pytest.raises(ConfigError, match="MASTER_PORT='x' must be an integer"):
        distributed.launch_environment({**full, "MASTER_PORT": "x"})


def test_shares_of_prompts_and_cores():
    for count in range(0, 11):
        for world in (1, 2, 3, 4):
            ranges = [distributed.shard_range(count, r, world) for r in range(world)]
            assert ranges[0][0] == 0 and ranges[-1][1] == count
            assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))  # contiguous, in rank order
            assert max(b - a for a, b in ranges) - min(b - a for a, b in ranges) <= 1
    assert distributed.core_share(range(8), 1, 4) == [2, 3]
    assert distributed.core_share([5, 1, 3], 0, 2) == [1]  # sorted, every rank gets at least one
    assert distributed.core_share([0], 1, 2) == [0]  # fewer cores than ranks: shared
    distributed.check_divides(8, "algo.prompts_per_step", 4)
    with pytest.raises(ConfigError, match=r"'algo.prompts_per_step' = 6 is not a multiple of the 4 processes.*e\.g\. 8"):
        distributed.check_divides(6, "algo.prompts_per_step", 4)


def test_resume_may_change_how_the_run_is_spread_not_what_it_learns():
    saved = {"steps": 3, "world_size": 2, "dist": {"sharding": "fsdp", "mixed_precision": False, "timeout_s": 600.0,
                                                   "cpu_offload": False, "bind_cores": True}}
    new = {"steps": 3, "world_size": 1, "dist": {"sharding": "ddp", "mixed_precision": True, "timeout_s": 600.0,
                                                 "cpu_offload": False, "bind_cores": True}}
    changes = distributed.adopt_launch_settings(saved, new)
    assert changes == {"world_size": (2, 1), "dist.sharding": ("fsdp", "ddp")}
    assert saved["dist"]["mixed_precision"] is False  # left for the resume check to refuse
    old_run = {"steps": 3}  # a config.yaml from before these fields existed
    assert distributed.adopt_launch_settings(old_run, new) == {}
    assert old_run["world_size"] == 1 and old_run["dist"]["mixed_precision"] is True


def test_seeded_samples_do_not_depend_on_the_batch(tiny_model_dir):
    """A prompt's samples depend on its seed alone: split over calls (ranks) or chunks, they are the same."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from grpo.engines.base import SamplingParams
    from grpo.engines.hf import HFEngine
    from grpo.trainer import prompt_seed

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    engine = HFEngine(AutoModelForCausalLM.from_pretrained(tiny_model_dir), tokenizer, batch_size=64)
    texts = ["Question: What is 1 + 2?\nAnswer:", "Q: 7?", "Question: What is 13 + 22 + 5?\nAnswer:", "x"]
    prompts = [tokenizer(t).input_ids for t in texts]  # different lengths: different left padding per call
    seeds = [prompt_seed(0, i) for i in range(4)]
    sampling = SamplingParams(max_new_tokens=10)
    whole = engine.generate(prompts, 3, sampling, seeds=seeds)
    halves = [engine.generate(prompts[:2], 3, sampling, seeds=seeds[:2]),
              engine.generate(prompts[2:], 3, sampling, seeds=seeds[2:])]
    engine.batch_size = 2  # other chunks
    chunked = engine.generate(prompts, 3, sampling, seeds=seeds)
    assert whole.token_ids == halves[0].token_ids + halves[1].token_ids == chunked.token_ids
    for a, b in zip(whole.logprobs, halves[0].logprobs + halves[1].logprobs):
        assert torch.allclose(torch.tensor(a), torch.tensor(b), atol=1e-5)
    assert len({tuple(t) for t in whole.token_ids}) > 6  # the G samples of a prompt still differ
    other = engine.generate(prompts, 3, sampling, seeds=[s + 1000 for s in seeds])
    assert other.token_ids != whole.token_ids
    assert prompt_seed(0, 7) == prompt_seed(0, 7) != prompt_seed(1, 7)


def test_weight_stream_merges_lora_under_plain_names(tiny_model_dir):
    """One process: the stream the engines get is the model as it samples, adapters merged, plain names."""
    from grpo.config import LoraConfig, ModelConfig
    from grpo.lora import merged_weights
    from grpo.models import load_policy

    model, _ = load_policy(ModelConfig(path=str(tiny_model_dir), lora=LoraConfig(r=4)))
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.1)  # fresh adapters are B = 0: make the merge visible
    stream = dict(distributed.gathered_named_tensors(model))
    with merged_weights(model) as named:
        expected = {n: t.detach().clone() for n, t in named}
    assert stream.keys() == expected.keys()
    assert not any("lora_" in n or "base_layer" in n or n.startswith("base_model") for n in stream)
    for name in expected:
        assert torch.allclose(stream[name], expected[name], atol=1e-6), name
    base, _ = load_policy(ModelConfig(path=str(tiny_model_dir)))
    q = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.allclose(stream[q], dict(base.named_parameters())[q])


# ---------------------------------------------------------------- 2 ranks, the real command line


@pytest.fixture(scope="module")
def runs(tiny_model_dir, tmp_path_factory):
    """One process for 3 steps, and 2 ranks for 2 steps, on the same global batch and seeds."""
    root = tmp_path_factory.mktemp("dist")
    model = ["--set", f"model.path={tiny_model_dir}"]
    rlvr("train", *model, *TINY, "--set", "steps=3", "--output-dir", str(root / "one"))
    two = rlvr("train", *model, *TINY, "--set", "steps=2", "--output-dir", str(root / "two"), launcher=TORCHRUN)
    return {"one": root / "one", "two": root / "two", "model": model, "two_stdout": two.stdout}


@pytest.mark.slow
def test_two_ranks_equal_one_process(runs):
    one, two = runs["one"], runs["two"]
    for step in (1, 2):
        assert_same_weights(weights(one, step), weights(two, step))
    assert any(not torch.equal(a, b) for a, b in zip(weights(one, 1).values(), weights(one, 2).values()))
    m1, m2 = read_jsonl(one / "metrics.jsonl")[:2], read_jsonl(two / "metrics.jsonl")
    assert [m["step"] for m in m2] == [1, 2]
    for a, b in zip(m1, m2):
        assert learned(a).keys() == learned(b).keys()
        for key in learned(a):
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-6), key
    assert [m["dist/world_size"] for m in m2] == [2, 2] and m1[0]["dist/world_size"] == 1
    s1, s2 = read_jsonl(one / "samples.jsonl"), read_jsonl(two / "samples.jsonl")
    assert len(s2) == 8 and [{**s, "advantage": None} for s in s1[:8]] == [{**s, "advantage": None} for s in s2]
    assert [s["advantage"] for s in s1[:8]] == pytest.approx([s["advantage"] for s in s2], abs=1e-6)
    # rank 0 alone wrote the run folder; it records the world size; the checkpoint is sharded + a model folder
    assert "world_size: 2" in (two / "config.yaml").read_text()
    assert runs["two_stdout"].count("run folder:") >= 1
    ckpt = two / "checkpoints" / "step-2"
    assert (ckpt / "COMPLETE").is_file() and not list((two / "checkpoints").glob(".tmp-*"))
    assert sorted(p.name for p in (ckpt / "sharded").iterdir()) == [".metadata", "__0_0.distcp", "__1_0.distcp"]
    assert json.loads((ckpt / "sharded.json").read_text())["world_size"] == 2
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(ckpt)  # the consolidated folder loads on its own


@pytest.mark.slow
def test_two_rank_checkpoint_resumes_on_one_process(runs, tmp_path):
    """2 ranks -> 1 process: model and optimizer shards resharded; the step equals the uninterrupted run's."""
    import shutil

    run = tmp_path / "two"
    shutil.copytree(runs["two"], run)
    rlvr("train", *runs["model"], *TINY, "--set", "steps=3", "--output-dir", str(run), "--resume")
    assert_same_weights(weights(runs["one"], 3), weights(run, 3))
    assert [m["step"] for m in read_jsonl(run / "metrics.jsonl")] == [1, 2, 3]
    change = read_jsonl(run / "resumes.jsonl")[-1]["changes"]
    assert change["world_size"] == {"from": 2, "to": 1}
    assert "world_size: 1" in (run / "config.yaml").read_text()


@pytest.mark.slow
def test_mixed_or_partial_checkpoints_are_refused(runs, tmp_path):
    import shutil

    assert sharded_state_of(latest_checkpoint(runs["two"])) is not None
    assert sharded_state_of(latest_checkpoint(runs["one"])) is None  # one process: the classic checkpoint
    def newer_version(c: Path) -> None:
        meta = json.loads((c / "sharded.json").read_text())
        (c / "sharded.json").write_text(json.dumps({**meta, "version": 99}))

    cases = {
        "newer": (newer_version, "version 99"),
        "other step": (lambda c: (c / "trainer_state.json").write_text('{"step": 1}\n'), "mixes files of different"),
        "lost shard": (lambda c: (c / "sharded" / "__1_0.distcp").unlink(), "missing 1 shard file"),
        "no metadata": (lambda c: (c / "sharded.json").unlink(), "no sharded.json"),
    }
    for name, (damage, message) in cases.items():
        ckpt = tmp_path / name / "step-2"
        shutil.copytree(runs["two"] / "checkpoints" / "step-2", ckpt)
        damage(ckpt)
        with pytest.raises(ConfigError, match=message):
            sharded_state_of(ckpt)
    # through the command line: a resume stops with the cause before anything is written
    run = tmp_path / "run"
    shutil.copytree(runs["two"], run)
    cases["lost shard"][0](run / "checkpoints" / "step-2")
    before = (run / "metrics.jsonl").read_text()
    proc = rlvr("train", *runs["model"], *TINY, "--set", "steps=3", "--output-dir", str(run), "--resume", check=False)
    assert proc.returncode == 2 and "missing 1 shard file" in proc.stderr
    assert (run / "metrics.jsonl").read_text() == before


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_a_killed_rank_stops_the_other_and_the_run_resumes(runs, tmp_path):
    """Ranks started as a cluster launcher would (no torchrun watching them): kill -9 one, the other stops
    within seconds naming the cause; a --resume under torchrun (on DDP now) continues from the newest
    complete checkpoint."""
    run = tmp_path / "run"
    port = _free_port()
    procs = []
    for rank in (0, 1):
        env = {**ENV, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2",
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "grpo.cli", "train", *runs["model"], *TINY, "--set", "steps=200",
             "--set", "dist.timeout_s=60", "--output-dir", str(run)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
    try:
        deadline = time.time() + 120
        while not (run / "checkpoints" / "step-1" / "COMPLETE").exists():
            assert all(p.poll() is None for p in procs), procs[0].stderr.read()[-3000:]
            assert time.time() < deadline
            time.sleep(0.05)
        procs[1].send_signal(signal.SIGKILL)
        killed_at = time.time()
        procs[0].wait(timeout=60)
        stopped_in = time.time() - killed_at
        err = procs[0].stderr.read()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert stopped_in < 30, stopped_in
    assert procs[0].returncode == 4
    assert "another rank stopped or stopped answering" in err and "continue with: torchrun" in err
    complete = [p for p in (run / "checkpoints").iterdir() if (p / "COMPLETE").is_file()]
    newest = latest_checkpoint(run)
    assert newest in complete and sharded_state_of(newest) is not None
    last = int(newest.name.split("-")[1])
    rlvr("train", *runs["model"], *TINY, "--set", f"steps={last + 1}", "--set", "dist.sharding=ddp",
         "--output-dir", str(run), "--resume", launcher=TORCHRUN)
    assert [m["step"] for m in read_jsonl(run / "metrics.jsonl")] == list(range(1, last + 2))
    assert latest_checkpoint(run).name == f"step-{last + 1}"


@pytest.mark.slow
def test_prompts_the_ranks_cannot_share_stop_every_rank(tiny_model_dir, tmp_path):
    proc = rlvr("train", "--set", f"model.path={tiny_model_dir}", *TINY, "--set", "algo.prompts_per_step=3",
                "--output-dir", str(tmp_path / "run"), launcher=TORCHRUN, check=False)
    assert proc.returncode != 0
    # each rank refuses on its own; torchrun then stops whichever has not printed yet (under load one rank
    # can be stopped before it prints), so at least one message, and the run ends instead of hanging
    assert proc.stderr.count("'algo.prompts_per_step' = 3 is not a multiple of the 2 processes") >= 1
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_sft_on_two_ranks_equals_one_process(tiny_model_dir, tmp_path):
    args = ["--set", f"model.path={tiny_model_dir}", "--set", "steps=2", "--set", "batch_size=4",
            "--set", "optim.micro_batch_size=1", "--no-progress"]
    rlvr("sft", *args, "--output-dir", str(tmp_path / "one"))
    rlvr("sft", *args, "--output-dir", str(tmp_path / "two"), launcher=TORCHRUN)
    assert_same_weights(weights(tmp_path / "one", 2), weights(tmp_path / "two", 2), atol=1e-6)
    one, two = read_jsonl(tmp_path / "one" / "metrics.jsonl"), read_jsonl(tmp_path / "two" / "metrics.jsonl")
    assert [m["sft/loss"] for m in one] == pytest.approx([m["sft/loss"] for m in two], rel=1e-5)
    assert [m["dist/world_size"] for m in two] == [2, 2]


@pytest.mark.slow
def test_reward_model_on_two_ranks_equals_one_process(tiny_model_dir, tmp_path):
    """rlvr rm: each rank scores its share of every batch of pairs (FSDP2), and the shared-out scoring
    (held-out accuracy, the reward statistics PPO normalizes with, the report) gives one process's figures."""
    from grpo.pairs import write_pairs
    from pair_support import boxed_pairs

    train = write_pairs(tmp_path / "train.jsonl", boxed_pairs("train", 24, 0))
    heldout = write_pairs(tmp_path / "heldout.jsonl", boxed_pairs("test", 7, 1))  # 7: unequal shares to score
    args = ["--set", f"model.path={tiny_model_dir}", "--set", f"data.train={train}", "--set", f"data.heldout={heldout}",
            "--set", "steps=2", "--set", "batch_size=4", "--set", "optim.micro_batch_size=1", "--set", "optim.lr=1e-3",
            "--set", "optim.warmup_steps=0", "--set", "eval_every=1", "--no-progress"]
    rlvr("rm", *args, "--output-dir", str(tmp_path / "one"))
    rlvr("rm", *args, "--output-dir", str(tmp_path / "two"), launcher=TORCHRUN)
    one, two = tmp_path / "one", tmp_path / "two"
    assert_same_weights(weights(one, 2), weights(two, 2), atol=1e-6)
    m1, m2 = read_jsonl(one / "metrics.jsonl"), read_jsonl(two / "metrics.jsonl")
    for a, b in zip(m1, m2):
        assert learned(a).keys() == learned(b).keys()
        for key in learned(a):
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-6), key
    assert [m["dist/world_size"] for m in m2] == [2, 2]
    stats = [json.loads((run / "checkpoints" / "step-2" / "reward_stats.json").read_text()) for run in (one, two)]
    assert stats[0]["n"] == stats[1]["n"] == 48
    assert stats[0]["mean"] == pytest.approx(stats[1]["mean"], abs=1e-5)
    assert stats[0]["std"] == pytest.approx(stats[1]["std"], abs=1e-5)
    reports = [json.loads((run / "eval" / "report.json").read_text()) for run in (one, two)]
    assert reports[1]["heldout"]["pairs"] == 7
    assert reports[0]["heldout"]["accuracy"] == reports[1]["heldout"]["accuracy"]
    assert "world_size: 2" in (two / "config.yaml").read_text()
    from transformers import AutoModelForSequenceClassification

    AutoModelForSequenceClassification.from_pretrained(two / "checkpoints" / "step-2")


PPO = ["--set", "rollout.engine=hf", "--set", "rollout.max_new_tokens=8", "--set", "rollout.seeding=per_prompt",
       "--set", "algo.prompts_per_step=4", "--set", "algo.group_size=2",
       "--set", "algo.mini_batch_size=3",  # 8 samples in mini-batches of 3: the ranks' shares of each differ
       "--set", "algo.ppo_epochs=2", "--set", "optim.lr=1e-3", "--set", "critic.optim.lr=1e-3",
       "--set", "optim.micro_batch_size=1", "--set", "critic.optim.micro_batch_size=2",
       "--set", "reward.verifier_weight=0.5", "--set", "verifier=plugin_verifiers:digit_share",
       "--set", "eval.problems=3", "--set", "eval.n=2", "--set", "eval.ks=[1,2]", "--set", "eval.every=1",
       "--set", "eval.max_new_tokens=6", "--set", "save_every=1", "--set", "keep_checkpoints=5", "--no-progress"]


@pytest.fixture(scope="module")
def ppo_runs(tiny_model_dir, tmp_path_factory):
    """PPO with a reward model and the verifier, a critic from the policy: one process for 3 steps, 2 ranks
    (FSDP2: policy, reference and critic sharded) for 2."""
    from ppo_support import build_reward_model

    root = tmp_path_factory.mktemp("ppo")
    rm = build_reward_model(root / "rm", tiny_model_dir, kind="random", seed=1)
    model = ["--set", f"model.path={tiny_model_dir}", "--set", f"reward.reward_model.path={rm}"]
    rlvr("ppo", *model, *PPO, "--set", "steps=3", "--output-dir", str(root / "one"))
    rlvr("ppo", *model, *PPO, "--set", "steps=2", "--output-dir", str(root / "two"), launcher=TORCHRUN)
    return {"one": root / "one", "two": root / "two", "model": model}


@pytest.mark.slow
def test_ppo_on_two_ranks_equals_one_process(ppo_runs):
    one, two = ppo_runs["one"], ppo_runs["two"]
    for step in (1, 2):
        assert_same_weights(weights(one, step), weights(two, step))
        critic = lambda run: load_file(str(run / "checkpoints" / f"step-{step}" / "critic" / "model.safetensors"))
        assert_same_weights(critic(one), critic(two))
    assert any(not torch.equal(a, b) for a, b in zip(weights(one, 1).values(), weights(one, 2).values()))
    m1, m2 = read_jsonl(one / "metrics.jsonl")[:2], read_jsonl(two / "metrics.jsonl")
    for a, b in zip(m1, m2):
        assert learned(a).keys() == learned(b).keys()
        for key in learned(a):
            # a clip fraction counts tokens on one side of a threshold: at the first mini-batch the values equal
            # the rollout's, and float noise of ~1e-7 puts a token on either side (one token in 128: 0.008)
            tolerance = 0.02 if "clip_frac" in key else 1e-5
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=tolerance), key
    assert "eval/pass@1" in m2[0] and "eval/rm_score" in m2[0] and "monitor/proxy" in m2[0]
    assert [m["dist/world_size"] for m in m2] == [2, 2]
    s1, s2 = read_jsonl(one / "samples.jsonl"), read_jsonl(two / "samples.jsonl")
    assert [s["completion"] for s in s1[: len(s2)]] == [s["completion"] for s in s2]
    ckpt = two / "checkpoints" / "step-2"
    assert "world_size: 2" in (two / "config.yaml").read_text()
    assert sorted(p.name for p in (ckpt / "critic" / "sharded").iterdir()) == [".metadata", "__0_0.distcp",
                                                                               "__1_0.distcp"]
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    AutoModelForCausalLM.from_pretrained(ckpt)
    AutoModelForSequenceClassification.from_pretrained(ckpt / "critic")


@pytest.mark.slow
def test_ppo_two_rank_checkpoint_resumes_on_one_process(ppo_runs, tmp_path):
    """Policy, critic and both optimizers resharded from 2 ranks to 1: step 3 equals the uninterrupted run's."""
    import shutil

    run = tmp_path / "two"
    shutil.copytree(ppo_runs["two"], run)
    rlvr("ppo", *ppo_runs["model"], *PPO, "--set", "steps=3", "--output-dir", str(run), "--resume")
    assert_same_weights(weights(ppo_runs["one"], 3), weights(run, 3))
    critic = lambda r: load_file(str(r / "checkpoints" / "step-3" / "critic" / "model.safetensors"))
    assert_same_weights(critic(ppo_runs["one"]), critic(run))
    assert read_jsonl(run / "resumes.jsonl")[-1]["changes"]["world_size"] == {"from": 2, "to": 1}
    (run / "checkpoints" / "step-3" / "critic" / "sharded" / "__1_0.distcp").unlink(missing_ok=True)
    damaged = run / "checkpoints" / "step-2" / "critic" / "sharded" / "__1_0.distcp"
    damaged.unlink()
    with pytest.raises(ConfigError, match=r"missing 1 shard file.*critic/sharded/__1_0.distcp"):
        sharded_state_of(damaged.parents[2], parts=("critic",))


@pytest.mark.slow
def test_ppo_one_process_checkpoint_continues_on_two_ddp_ranks(ppo_runs, tmp_path):
    """The other way round, on DDP (whole replicas): the one-process optimizer states are sharded out to the
    ranks by parameter name, and the run goes on from step 3 to 4."""
    import shutil

    run = tmp_path / "one"
    shutil.copytree(ppo_runs["one"], run)
    rlvr("ppo", *ppo_runs["model"], *PPO, "--set", "steps=4", "--set", "dist.sharding=ddp", "--output-dir", str(run),
         "--resume", launcher=TORCHRUN)
    metrics = read_jsonl(run / "metrics.jsonl")
    assert [m["step"] for m in metrics] == [1, 2, 3, 4] and metrics[-1]["dist/world_size"] == 2
    assert all(math.isfinite(metrics[-1][k]) for k in ("loss/policy", "loss/value", "optim/grad_norm"))
    assert sharded_state_of(latest_checkpoint(run), parts=("critic",)) is not None
    assert read_jsonl(run / "resumes.jsonl")[-1]["changes"]["world_size"] == {"from": 1, "to": 2}


def test_commands_that_run_in_one_process_refuse_torchrun(tmp_path, monkeypatch, capsys):
    from grpo.cli import main, refuse_unsupported_torchrun

    refuse_unsupported_torchrun("train", {"WORLD_SIZE": "2"})  # shared over ranks: no error
    refuse_unsupported_torchrun("ppo", {"WORLD_SIZE": "2"})
    refuse_unsupported_torchrun("dpo", {"WORLD_SIZE": "1"})
    refuse_unsupported_torchrun("dpo", {})
    monkeypatch.setenv("WORLD_SIZE", "2")
    out = tmp_path / "dpo"
    assert main(["dpo", "--output-dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert "rlvr dpo runs in one process" in err and "WORLD_SIZE=2" in err and "train, sft, rm, ppo" in err
    assert not out.exists()
