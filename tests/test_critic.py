"""The critic (grpo/critic.py): where it starts from, which value it reads at which position, what it refuses."""

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

from grpo.critic import check_compatible, critic_values, inspect_folder, load_critic, model_vocab_size
from grpo.errors import ConfigError
from grpo.logprobs import pack
from ppo_support import build_reward_model


@pytest.fixture(scope="module")
def reward_model_dir(tiny_model_dir, tmp_path_factory):
    return build_reward_model(tmp_path_factory.mktemp("rm") / "rm", tiny_model_dir, kind="random", seed=3)


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


def test_critic_from_the_reward_model_is_the_reward_model(reward_model_dir):
    critic, fresh = load_critic(inspect_folder(str(reward_model_dir), "critic.path"), "critic.path")
    reward_model = AutoModelForSequenceClassification.from_pretrained(reward_model_dir)
    assert not fresh
    mine, theirs = critic.state_dict(), reward_model.state_dict()
    assert mine.keys() == theirs.keys() and any(k.startswith("model.layers.") for k in mine)
    for key in theirs:  # backbone and value head alike
        assert torch.equal(mine[key], theirs[key]), key
    assert critic.training and all(p.requires_grad for p in critic.parameters())


def test_critic_from_the_policy_has_its_backbone_and_a_zero_head(tiny_model_dir, tokenizer):
    critic, fresh = load_critic(inspect_folder(str(tiny_model_dir), "model.path"), "model.path")
    policy = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert fresh
    backbone = {k: v for k, v in policy.state_dict().items() if k.startswith("model.")}
    mine = critic.state_dict()
    assert backbone and all(torch.equal(mine[k], v) for k, v in backbone.items())
    assert torch.count_nonzero(critic.score.weight) == 0
    batch = pack([tokenizer("What is 1 + 2?").input_ids], [tokenizer(" 3").input_ids], tokenizer.pad_token_id)
    values, final = critic_values(critic, batch)
    assert torch.count_nonzero(values) == 0 and torch.count_nonzero(final) == 0


def test_values_are_read_at_the_state_before_each_token(reward_model_dir, tokenizer):
    """values[b, t] = V(prompt + completion[:t]); final[b] = V(prompt + whole completion), whatever the padding."""
    critic, _ = load_critic(inspect_folder(str(reward_model_dir), "critic.path"), "critic.path")
    critic.eval()
    prompts = [tokenizer("What is 12 + 3?").input_ids, tokenizer("Q").input_ids, tokenizer("What is 4?").input_ids]
    completions = [tokenizer(" 15").input_ids + [tokenizer.eos_token_id], tokenizer(" 1 2 3 4 5 6").input_ids,
                   tokenizer(" 4").input_ids]
    batch = pack(prompts, completions, tokenizer.pad_token_id)  # prompts left-padded, completions right-padded
    with torch.no_grad():
        values, final = critic_values(critic, batch)
    assert values.shape == batch.completion_ids.shape and final.shape == (3,)

    def state_value(ids):  # the slow way: the state alone, unpadded, read at its last token
        with torch.no_grad():
            hidden = critic.model(input_ids=torch.tensor([ids])).last_hidden_state[0, -1]
            return float(critic.score(hidden))

    for b, (p, c) in enumerate(zip(prompts, completions)):
        for t in range(len(c)):
            assert values[b, t].item() == pytest.approx(state_value(p + c[:t]), abs=1e-5), (b, t)
        assert final[b].item() == pytest.approx(state_value(p + c), abs=1e-5), b


def test_values_carry_gradient_to_backbone_and_head(reward_model_dir, tokenizer):
    critic, _ = load_critic(inspect_folder(str(reward_model_dir), "critic.path"), "critic.path")
    batch = pack([tokenizer("What is 1?").input_ids], [tokenizer(" 1").input_ids], tokenizer.pad_token_id)
    values, _ = critic_values(critic, batch)
    values.sum().backward()
    assert critic.score.weight.grad is not None and critic.model.embed_tokens.weight.grad is not None


def test_a_critic_or_reward_model_of_another_vocabulary_is_refused(tiny_model_dir, tmp_path):
    policy_vocab = model_vocab_size(AutoModelForCausalLM.from_pretrained(tiny_model_dir))
    other = build_reward_model(tmp_path / "other", tiny_model_dir, vocab_size=policy_vocab + 7)
    with pytest.raises(ConfigError) as err:
        check_compatible(inspect_folder(str(other), "critic.path"), "critic.path", policy_vocab, role="critic")
    assert "'critic.path'" in str(err.value) and f"{policy_vocab + 7} tokens" in str(err.value)
    assert "Fix:" in str(err.value)


def test_a_head_that_does_not_fit_the_hidden_size_is_refused(tiny_model_dir, reward_model_dir, tmp_path):
    folder = tmp_path / "bad_head"
    AutoModelForSequenceClassification.from_pretrained(reward_model_dir).save_pretrained(folder)
    weights = load_file(str(folder / "model.safetensors"))
    weights["score.weight"] = torch.zeros(1, 32)  # the backbone's hidden size is 64
    save_file(weights, str(folder / "model.safetensors"), metadata={"format": "pt"})
    info = inspect_folder(str(folder), "critic.path")
    assert info.head_shape == (1, 32) and info.hidden_size == 64
    with pytest.raises(ConfigError) as err:
        check_compatible(info, "critic.path", info.vocab_size, role="critic")
    assert "'critic.path'" in str(err.value) and "hidden size" in str(err.value) and "[1, 64]" in str(err.value)
