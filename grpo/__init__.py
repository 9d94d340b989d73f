"""rlvr's trainer: GRPO from verifiable rewards, SFT, evaluation."""

__version__ = "0.1.0"
