"""Held-out evaluation with the unbiased pass@k estimator (Chen et al. 2021, arXiv:2107.03374)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from grpo.rollout import RolloutEngine, SamplingParams
from verifiers import Verifier, verify_batch


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased estimate of pass@k from ``c`` correct out of ``n`` samples.

    ``1 - C(n-c, k) / C(n, k)``, computed as the product ``prod_{i=n-c+1}^{n} (1 - k/i)``,
    which never forms the huge binomials and stays exact in floating point for large n.
    """
    if not (0 <= c <= n) or k < 1:
        raise ValueError(f"pass_at_k needs 0 <= c <= n and k >= 1; got n={n}, c={c}, k={k}")
    if k > n:
        raise ValueError(f"pass_at_k: k={k} exceeds the number of samples n={n}")
    if n - c < k:
        return 1.0
    prob_all_fail = 1.0
    for i in range(n - c + 1, n + 1):
        prob_all_fail *= 1.0 - k / i
    return 1.0 - prob_all_fail


@dataclass(frozen=True)
class EvalResult:
    pass_at: dict[int, float]  # k -> mean over problems of pass@k
    mean_reward: float
    unverifiable_rate: float
    n_problems: int
    n_samples: int  # per problem
    per_problem: list[dict[str, Any]]

    def summary(self) -> dict[str, float]:
        out = {f"pass@{k}": v for k, v in self.pass_at.items()}
        out.update(mean_reward=self.mean_reward, unverifiable_rate=self.unverifiable_rate, n_problems=self.n_problems)
        return out


def evaluate(
    engine: RolloutEngine,
    prompt_ids: Sequence[Sequence[int]],
    rows: Sequence[Mapping[str, Any]],
    verifier: Verifier,
    *,
    n: int,
    ks: Sequence[int],
    sampling: SamplingParams,
) -> EvalResult:
    """Sample ``n`` completions per problem, verify them, average pass@k over problems."""
    completions = engine.generate(prompt_ids, n, sampling)
    examples = [rows[i] for i in completions.prompt_index]
    verdicts = verify_batch(verifier, completions.text, examples)
    by_problem: dict[int, list[int]] = {p: [] for p in range(len(rows))}
    for j, p in enumerate(completions.prompt_index):
        by_problem[p].append(j)
    per_problem = [
        {
            "problem": p,
            "n": len(idx),
            "c": sum(verdicts[j].status == "correct" for j in idx),
            "completions": [completions.text[j] for j in idx],
            "verdicts": [verdicts[j].to_dict() for j in idx],
        }
        for p, idx in by_problem.items()
    ]
    total = max(1, len(verdicts))
    return EvalResult(
        pass_at={k: sum(pass_at_k(q["n"], q["c"], k) for q in per_problem) / max(1, len(rows)) for k in ks},
        mean_reward=sum(v.reward for v in verdicts) / total,
        unverifiable_rate=sum(v.status == "unverifiable" for v in verdicts) / total,
        n_problems=len(rows),
        n_samples=n,
        per_problem=per_problem,
    )
