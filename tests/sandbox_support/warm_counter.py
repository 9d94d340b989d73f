"""A trusted module for tests/test_sandbox.py: preloaded (and warmed) in sandbox workers."""

WARMED = 0


def warm() -> None:
    global WARMED
    WARMED += 1
