"""Length shaping: DAPO's soft overlong punishment (Yu et al. 2025, https://arxiv.org/abs/2503.14476, eq. 13).

With a maximum length ``L_max`` and a buffer of ``L_cache`` tokens before it, a completion of
``n`` tokens gets an extra reward of

    0                                  if n <= L_max - L_cache
    ((L_max - L_cache) - n) / L_cache  if L_max - L_cache < n <= L_max   (falls linearly to -1)
    -1                                 if n > L_max

times a penalty factor. It is added to the correctness reward, so long rambling is discouraged
smoothly instead of by a cliff at truncation. The trainer applies it from token counts
(``reward.overlong_buffer_len`` in the config); this module is the pure function.
"""

from __future__ import annotations


def soft_overlong_penalty(length: int, max_length: int, buffer_length: int, factor: float = 1.0) -> float:
    """The (non-positive) length reward of a completion of ``length`` tokens."""
    if max_length < 1 or not 0 < buffer_length <= max_length:
        raise ValueError(f"need max_length >= 1 and 0 < buffer_length <= max_length; "
                         f"got max_length={max_length}, buffer_length={buffer_length}")
    expected = max_length - buffer_length
    if length <= expected:
        return 0.0
    if length <= max_length:
        return factor * (expected - length) / buffer_length
    return -factor
