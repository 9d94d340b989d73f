"""Held-out evaluation: unbiased pass@k, maj@k, mean reward, bootstrap intervals, reports.

* ``pass@k`` is the unbiased estimator of Chen et al. 2021 (arXiv:2107.03374): from ``c``
  correct of ``n`` samples, the probability that a uniformly random subset of ``k`` holds a
  correct one, ``1 - C(n-c, k) / C(n, k)``, averaged over problems.
* ``maj@k`` (majority voting, Wang et al. 2022, arXiv:2203.11171) is, likewise, the exact
  expectation over uniformly random subsets of ``k`` of the ``n`` samples of: the subset's
  most frequent answer is correct. Answers are the verifier's ``Verdict.extracted`` (the
  normalized final answer), grouped by string equality; samples without one do not vote,
  and a subset in which nobody votes scores 0. Ties go to the answer that appears first
  among the ``n`` samples (samples are drawn independently, so their order is random).
  An answer group's correctness is the share of its samples judged correct (1 or 0 when
  the verifier is consistent). Reported for tasks whose verifier fills ``extracted``.
* 95% intervals: percentile bootstrap over problems (problems resampled with replacement,
  seeded), for each pass@k, maj@k and the mean reward.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from grpo.engines.base import Completions, RolloutEngine, SamplingParams
from verifiers import Verdict, VerifierSpec, verify_batch


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


def _truncated_binomial(m: int, limit: int, degree: int) -> list[int]:
    """Coefficients of sum_{x=0}^{min(m, limit)} C(m, x) z^x, cut at z^degree: ways to draw x of m."""
    return [math.comb(m, x) for x in range(min(m, limit, degree) + 1)]


def _poly_mul(a: list[int], b: list[int], degree: int) -> list[int]:
    out = [0] * min(len(a) + len(b) - 1, degree + 1)
    for i, ai in enumerate(a[: len(out)]):
        if ai:
            for j, bj in enumerate(b[: len(out) - i]):
                out[i + j] += ai * bj
    return out


def maj_at_k(answers: Sequence[str | None], correct: Sequence[bool | float], k: int) -> float:
    """Exact expected correctness of a majority vote over a uniformly random k-subset of the samples.

    ``answers[i]``: the extracted answer of sample i (None: it does not vote); ``correct[i]``:
    whether it was judged correct. Ties go to the answer seen first among all samples. For
    the answer group g drawn t times, the vote is g's iff every earlier group is drawn fewer
    than t times and every later group at most t times; those subsets are counted with
    products of truncated binomial polynomials, in exact integers.
    """
    n = len(answers)
    if len(correct) != n:
        raise ValueError(f"maj_at_k: {n} answers but {len(correct)} correctness values")
    if not 1 <= k <= n:
        raise ValueError(f"maj_at_k needs 1 <= k <= n; got k={k}, n={n}")
    groups: dict[str, list[float]] = {}  # in order of first appearance
    for answer, ok in zip(answers, correct):
        if answer is not None:
            groups.setdefault(answer, []).append(float(ok))
    sizes = [len(v) for v in groups.values()]
    values = [Fraction(sum(v)) / len(v) for v in groups.values()]  # exact: floats convert exactly
    abstain = _truncated_binomial(n - sum(sizes), k, k)  # samples without an answer: any number of them
    total = Fraction(0)
    for t in range(1, min(k, max(sizes, default=0)) + 1):
        # before[g]: product over groups h < g drawn < t times; after[g]: over h > g drawn <= t times
        before = [[1]]
        for m in sizes[:-1]:
            before.append(_poly_mul(before[-1], _truncated_binomial(m, t - 1, k), k))
        after = [[1]]
        for m in reversed(sizes[1:]):
            after.append(_poly_mul(after[-1], _truncated_binomial(m, t, k), k))
        after.reverse()
        for g, m in enumerate(sizes):
            if m < t or values[g] == 0:
                continue
            rest = _poly_mul(_poly_mul(before[g], after[g], k - t), abstain, k - t)
            ways = math.comb(m, t) * (rest[k - t] if len(rest) > k - t else 0)
            total += values[g] * ways
    return float(total / math.comb(n, k))


def bootstrap_ci(values: np.ndarray, resamples: int = 1000, seed: int = 0,
                 level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval of the mean over problems, for each column.

    values: (P, M) one row per problem, one column per metric. Problems are resampled with
    replacement ``resamples`` times (seeded); returns (low, high), each (M,).
    """
    values = np.asarray(values, dtype=float)
    P = values.shape[0]
    if P == 0 or resamples < 1:
        nan = np.full(values.shape[1], np.nan)
        return nan, nan
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(P, np.full(P, 1.0 / P), size=resamples)  # (R, P): how often each problem is drawn
    means = counts @ values / P  # (R, M)
    tail = (1.0 - level) / 2 * 100
    return np.percentile(means, tail, axis=0), np.percentile(means, 100 - tail, axis=0)


@dataclass(frozen=True)
class EvalResult:
    pass_at: dict[int, float]  # k -> mean over problems of pass@k
    mean_reward: float
    unverifiable_rate: float
    n_problems: int
    n_samples: int  # per problem
    per_problem: list[dict[str, Any]]
    maj_at: dict[int, float] = field(default_factory=dict)  # k -> maj@k (empty: the verifier extracts no answers)
    ci95: dict[str, tuple[float, float]] = field(default_factory=dict)  # metric -> (low, high)
    truncation_rate: float = 0.0  # share of samples cut at max_new_tokens
    length_mean: float = 0.0  # completion tokens per sample

    def summary(self) -> dict[str, float]:
        """Flat metrics: pass@k, maj@k, their 95% bounds (``..._ci_low`` / ``..._ci_high``), rates."""
        out: dict[str, float] = {f"pass@{k}": v for k, v in self.pass_at.items()}
        out.update({f"maj@{k}": v for k, v in self.maj_at.items()})
        out.update(mean_reward=self.mean_reward, unverifiable_rate=self.unverifiable_rate,
                   truncation_rate=self.truncation_rate, length_mean=self.length_mean, n_problems=self.n_problems)
        for name, (low, high) in self.ci95.items():
            out[f"{name}_ci_low"], out[f"{name}_ci_high"] = low, high
        return out


def strip_stop(text: str, finish_reason: str, stop: Sequence[str]) -> str:
    """The completion without the stop string that ended it (engines differ on keeping it)."""
    if finish_reason == "stop":
        for s in stop:
            if s and text.endswith(s):
                return text[: -len(s)]
    return text


def evaluate(
    engine: RolloutEngine,
    prompt_ids: Sequence[Sequence[int]],
    rows: Sequence[Mapping[str, Any]],
    verifier: VerifierSpec,
    *,
    n: int,
    ks: Sequence[int],
    sampling: SamplingParams,
    timeout_s: float | None = None,
    bootstrap: int = 1000,
    seed: int = 0,
    problems_per_chunk: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> EvalResult:
    """Sample ``n`` completions per problem, verify them, and score pass@k, maj@k and the mean reward.

    Problems go to the engine ``problems_per_chunk`` at a time (all at once by default);
    ``progress(done)`` is called with the number of problems finished after each chunk. A
    completion that ended on a stop string is judged without it.
    """
    for k in ks:
        if not 1 <= k <= n:
            raise ValueError(f"evaluate: each k must be in [1, n={n}]; got k={k}")
    P = len(rows)
    chunk = problems_per_chunk or max(P, 1)
    texts: list[str] = []
    completions = Completions()
    verdicts: list[Verdict] = []
    for start in range(0, P, chunk):
        part = completions_of(engine, prompt_ids[start : start + chunk], n, sampling)
        part_texts = [strip_stop(t, f, sampling.stop) for t, f in zip(part.text, part.finish_reason)]
        examples = [rows[start + i] for i in part.prompt_index]
        verdicts += verify_batch(verifier, part_texts, examples, timeout_s=timeout_s,
                                 finish_reasons=part.finish_reason)
        completions.extend(part, index_offset=start)
        texts += part_texts
        if progress is not None:
            progress(min(P, start + chunk))

    by_problem: list[list[int]] = [[] for _ in range(P)]
    for j, p in enumerate(completions.prompt_index):
        by_problem[p].append(j)
    with_answers = any(v.extracted is not None for v in verdicts)
    per_problem = []
    for p, idx in enumerate(by_problem):
        vs = [verdicts[j] for j in idx]
        c = sum(v.status == "correct" for v in vs)
        record: dict[str, Any] = {
            "problem": p,
            "n": len(idx),
            "c": c,
            "pass_at": {str(k): pass_at_k(len(idx), c, k) for k in ks},
            "mean_reward": sum(v.reward for v in vs) / max(1, len(vs)),
        }
        if with_answers:
            answers = [v.extracted for v in vs]
            record["maj_at"] = {str(k): maj_at_k(answers, [v.status == "correct" for v in vs], k) for k in ks}
            votes = [a for a in answers if a is not None]
            record["majority_answer"] = max(votes, key=votes.count) if votes else None  # first of the most voted
        record.update(
            completions=[texts[j] for j in idx],
            verdicts=[verdicts[j].to_dict() for j in idx],
            finish_reasons=[completions.finish_reason[j] for j in idx],
            completion_tokens=[len(completions.token_ids[j]) for j in idx],
        )
        per_problem.append(record)

    # per-problem metric columns -> means and bootstrap intervals over problems
    names = [f"pass@{k}" for k in ks] + ([f"maj@{k}" for k in ks] if with_answers else []) + ["mean_reward"]
    table = np.array([[q["pass_at"][str(k)] for k in ks]
                      + ([q["maj_at"][str(k)] for k in ks] if with_answers else [])
                      + [q["mean_reward"]] for q in per_problem], dtype=float).reshape(P, len(names))
    means = table.mean(axis=0) if P else np.zeros(len(names))
    low, high = bootstrap_ci(table, bootstrap, seed)
    ci95 = {name: (float(lo), float(hi)) for name, lo, hi in zip(names, low, high)} if P and bootstrap else {}
    total = max(1, len(verdicts))
    return EvalResult(
        pass_at={k: float(means[i]) for i, k in enumerate(ks)},
        maj_at={k: float(means[len(ks) + i]) for i, k in enumerate(ks)} if with_answers else {},
        mean_reward=sum(v.reward for v in verdicts) / total,
        unverifiable_rate=sum(v.status == "unverifiable" for v in verdicts) / total,
        truncation_rate=completions.finish_reason.count("length") / total,
        length_mean=sum(len(t) for t in completions.token_ids) / total,
        n_problems=P,
        n_samples=n,
        per_problem=per_problem,
        ci95=ci95,
    )


def completions_of(engine: RolloutEngine, prompt_ids: Sequence[Sequence[int]], n: int,
                   sampling: SamplingParams) -> Completions:
    return engine.generate(prompt_ids, n, sampling) if prompt_ids else Completions()


# ---------------------------------------------------------------- reports

def _fmt(value: float | None) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def summary_dict(result: EvalResult, meta: Mapping[str, Any]) -> dict[str, Any]:
    """The summary.json document: ``meta`` (model, task, sampling, ...) and every metric with its interval."""
    metrics: dict[str, Any] = {}
    for name, value in ([(f"pass@{k}", v) for k, v in result.pass_at.items()]
                        + [(f"maj@{k}", v) for k, v in result.maj_at.items()]
                        + [("mean_reward", result.mean_reward)]):
        metrics[name] = {"value": value, "ci95": list(result.ci95[name]) if name in result.ci95 else None}
    metrics.update(unverifiable_rate=result.unverifiable_rate, truncation_rate=result.truncation_rate,
                   completion_tokens_mean=result.length_mean)
    return {**meta, "n_problems": result.n_problems, "n": result.n_samples, "metrics": metrics}


def markdown_report(result: EvalResult, meta: Mapping[str, Any]) -> str:
    title = f"# Evaluation: {meta.get('task', '?')} ({meta.get('split', '?')})"
    lines = [title, ""]
    for key in ("model", "model_path", "verifier"):
        if meta.get(key):
            lines.append(f"- {key.replace('_', ' ')}: `{meta[key]}`")
    s = meta.get("sampling", {})
    lines.append(f"- {result.n_problems} problems, n = {result.n_samples} samples each"
                 + (f", temperature {s.get('temperature')}, top_p {s.get('top_p')}, top_k {s.get('top_k')}, "
                    f"max_new_tokens {s.get('max_new_tokens')}" if s else "")
                 + (f", seed {meta['seed']}" if "seed" in meta else ""))
    lines += ["", "| metric | value | 95% CI |", "|---|---|---|"]
    for name, value in ([(f"pass@{k}", v) for k, v in result.pass_at.items()]
                        + [(f"maj@{k}", v) for k, v in result.maj_at.items()]
                        + [("mean reward", result.mean_reward)]):
        ci = result.ci95.get(name.replace(" ", "_"))
        lines.append(f"| {name} | {_fmt(value)} | {f'{_fmt(ci[0])} to {_fmt(ci[1])}' if ci else ''} |")
    lines += [f"| unverifiable rate | {_fmt(result.unverifiable_rate)} | |",
              f"| truncated at max_new_tokens | {_fmt(result.truncation_rate)} | |",
              f"| completion tokens (mean) | {result.length_mean:.1f} | |", ""]
    lines.append("pass@k: the unbiased estimator of Chen et al. 2021 from c correct of n samples. "
                 + ("maj@k: the expected correctness of a majority vote over k of the n samples (answers as "
                    "the verifier extracted them). " if result.maj_at else "")
                 + "Intervals: percentile bootstrap over problems"
                 + (f" ({meta['bootstrap']} resamples)." if meta.get("bootstrap") else "."))
    return "\n".join(lines) + "\n"


def write_reports(result: EvalResult, out_dir: str | Path, meta: Mapping[str, Any],
                  problem_fields: Sequence[Mapping[str, Any]] | None = None) -> dict[str, Path]:
    """Write per_problem.jsonl, summary.json and report.md into ``out_dir``; returns their paths.

    ``problem_fields[p]`` (e.g. the problem's id, prompt and gold answer) leads each per-problem line.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"per_problem": out / "per_problem.jsonl", "summary": out / "summary.json", "report": out / "report.md"}
    with open(paths["per_problem"], "w") as fh:
        for p, record in enumerate(result.per_problem):
            extra = dict(problem_fields[p]) if problem_fields is not None else {}
            fh.write(json.dumps({**extra, **record}, default=str) + "\n")
    paths["summary"].write_text(json.dumps(summary_dict(result, meta), indent=2, default=str) + "\n")
    paths["report"].write_text(markdown_report(result, meta))
    return paths
