"""Verifiers loaded by the end-to-end tests as plugins (``--set verifier=plugin_verifiers:NAME``)."""

from verifiers import Verdict


def digit_share(completion: str, example) -> Verdict:
    """Reward = share of digits in the completion: a signal even a random-init policy gets varied."""
    share = sum(ch.isdigit() for ch in completion) / max(1, len(completion))
    return Verdict("correct" if share > 0.2 else "incorrect", share, f"{share:.2f} digits")


def odd_answers_only(completion: str, example) -> Verdict:
    """Rows with an even answer always score 0 (their groups carry no signal); odd ones score by digit share."""
    if int(example["answer"]) % 2 == 0:
        return Verdict("incorrect", 0.0, "even answer: constant reward")
    return digit_share(completion, example)


def always_raises(completion: str, example) -> Verdict:
    """A plugin with a bug: every call raises, so nothing can be judged."""
    raise KeyError("final")


def nan_on_odd_answers(completion: str, example) -> Verdict:
    """A plugin with a bug: rows with an odd answer get a NaN reward, the others score by digit share."""
    if int(example["answer"]) % 2 == 1:
        return Verdict("correct", float("nan"), "a NaN reward")
    return digit_share(completion, example)
