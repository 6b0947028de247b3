"""Robust z-score: how unusual a value is against a region's own history.

Median and MAD instead of mean and standard deviation, so one bad month in
the history does not hide the next one.  1.4826 · MAD estimates the
standard deviation of normal data.  A flat history (MAD 0, common for
rates stuck at 100%) would make any change infinitely unusual, hence the
floor ``min_spread`` (on the value's scale: 0.01 = one percentage point).
"""
from __future__ import annotations

import statistics
from collections.abc import Sequence

MAD_TO_SIGMA = 1.4826


def robust_z(value: float, history: Sequence[float],
             min_spread: float) -> tuple[float, float, float]:
    """(z, median, spread) with spread = max(1.4826 · MAD, min_spread)."""
    median = statistics.median(history)
    mad = statistics.median(abs(v - median) for v in history)
    spread = max(MAD_TO_SIGMA * mad, min_spread)
    if spread == 0:
        z = 0.0 if value == median else float("inf") if value > median else float("-inf")
    else:
        z = (value - median) / spread
    return z, median, spread
