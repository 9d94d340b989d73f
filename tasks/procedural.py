"""What the procedural tasks (arithmetic, countdown) share: how problems are split and how many."""

from __future__ import annotations

import hashlib

HELDOUT_BUCKETS = 10  # of 100: the share of the problem space reserved for held-out
TRAIN_SIZE = 20_000
TEST_SIZE = 500
TRAIN_SEED = 0
TEST_SEED = 1


def split_of_key(key: str) -> str:
    """'test' for the held-out share of the problem space, 'train' for the rest: a pure function
    of the problem, so the splits never overlap, whatever is generated."""
    bucket = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % 100
    return "test" if bucket < HELDOUT_BUCKETS else "train"
