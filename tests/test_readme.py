"""The README's config block states the real defaults: every value it shows is the default of that field
(model.path excepted: it shows the demo's SFT policy, the usual starting point)."""

import re
from pathlib import Path

import yaml

from grpo.config import TrainConfig, to_dict

README = Path(__file__).resolve().parents[1] / "README.md"


def flatten(tree, prefix=""):
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value and key != "verifiers":
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def test_readme_config_block_shows_the_defaults():
    config_section = README.read_text().split("## Config", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", config_section, re.S).group(1)
    shown = flatten(yaml.safe_load(block))
    defaults = flatten(to_dict(TrainConfig(rollout=TrainConfig().rollout)))
    assert len(shown) >= 30
    for key, value in shown.items():
        assert key in defaults, f"README shows {key}, which is no config field"
        if key != "model.path":
            assert value == defaults[key], f"README shows {key}: {value!r}; the default is {defaults[key]!r}"
