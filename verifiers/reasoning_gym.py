"""The ``reasoning_gym`` verifier: a reasoning-gym dataset's own scorer, on the completion's final answer.

reasoning-gym (``pip install -e ".[reasoning-gym]"``) generates problems procedurally and scores
an answer string against an entry with each dataset's ``score_answer``: 1.0 is correct, anything
lower a wrong or partly right answer (e.g. gsm_symbolic gives 0.01 to a wrong number, countdown
0.05 to a malformed expression). The final answer is read from the completion as the content of
the last ``\\boxed{}``, else of the last ``<answer>...</answer>`` (reasoning-gym's own convention).

Verdicts: score 1.0 is ``correct``; a lower score is ``incorrect`` with the score as the reward;
no answer found is ``incorrect`` with reward 0. A scorer that raises, returns something that is
not a score in [0, 1], or cannot be built (unknown dataset, reasoning-gym not installed) gives
``unverifiable``: the verifier failed, not the model.

Rows come from ``tasks/reasoning_gym.py`` and carry ``rg_dataset`` (the dataset name),
``rg_config`` (its generator options as JSON; some scorers read them), ``answer`` and
``metadata``. Scorers parse model text (some with sympy), so each sample is judged in a
sandboxed process with a deadline.
"""

from __future__ import annotations

import json
import math
import re
import sys
from functools import lru_cache
from typing import Any, Callable, Mapping

from verifiers.arithmetic import last_boxed
from verifiers.registry import register
from verifiers.types import Verdict

try:  # imported here, not per sample: a sandbox worker preloads this module and forks judges from it
    import reasoning_gym
except ImportError:  # the extra is not installed: judging says so (unverifiable)
    reasoning_gym = None
except Exception:  # in a sandbox worker, matplotlib (imported by reasoning-gym's cellpylib dependency) finds
    # no writable folder while the worker preloads; drop the half-imported modules, each judge imports them
    reasoning_gym = None
    for _name in [m for m in sys.modules if m.split(".")[0] in ("reasoning_gym", "matplotlib", "cellpylib")]:
        del sys.modules[_name]

INSTALL_HINT = 'pip install -e ".[reasoning-gym]"'
_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


def extract_final_answer(completion: str) -> str | None:
    """The last ``\\boxed{}``'s content, else the last ``<answer>...</answer>``'s, stripped; None if neither."""
    boxed = last_boxed(completion)
    if boxed is not None:
        return boxed.strip()
    tagged = _ANSWER_TAG.findall(completion)
    return tagged[-1].strip() if tagged else None


@lru_cache(maxsize=64)
def scorer(dataset: str, config_json: str = "{}") -> Callable[[str | None, dict[str, Any]], float]:
    """``score_answer`` of reasoning-gym dataset ``dataset`` built with the generator options ``config_json``."""
    global reasoning_gym
    if reasoning_gym is None:
        try:
            import reasoning_gym
        except ImportError as exc:
            raise RuntimeError(f"reasoning-gym is not installed; install it with {INSTALL_HINT}") from exc
    return reasoning_gym.create_dataset(dataset, **json.loads(config_json)).score_answer


@register("reasoning_gym", isolated=True, timeout_s=10.0)
def reasoning_gym_verifier(completion: str, example: Mapping[str, Any]) -> Verdict:
    """Score the completion's final answer with the row's reasoning-gym dataset scorer."""
    dataset = example.get("rg_dataset")
    if not isinstance(dataset, str):
        return Verdict("unverifiable", 0.0, "the row has no 'rg_dataset': the reasoning_gym verifier judges rows of "
                                            "a reasoning_gym task (task: reasoning_gym:NAME)")
    answer = extract_final_answer(completion)
    if answer is None:
        return Verdict("incorrect", 0.0, "no \\boxed{} or <answer></answer> answer")
    entry = {"question": example.get("question", ""), "answer": example.get("answer"),
             "metadata": example.get("metadata") or {}}
    try:
        score = scorer(dataset, example.get("rg_config") or "{}")(answer, entry)
        score = float(score)
    except Exception as exc:  # the scorer failed, not the model
        return Verdict("unverifiable", 0.0, f"reasoning-gym scorer of {dataset!r} failed: {exc!r}"[:300])
    if not math.isfinite(score) or not 0.0 <= score <= 1.0:
        return Verdict("unverifiable", 0.0, f"reasoning-gym scorer of {dataset!r} returned {score!r}, not a score in [0, 1]")
    if score == 1.0:
        return Verdict("correct", 1.0, "score 1.0", answer)
    return Verdict("incorrect", score, f"score {score:g} for answer {answer[:80]!r}", answer)
