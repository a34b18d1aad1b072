"""Small statistics for benchmark figures."""

from __future__ import annotations

import statistics


def percentile(sorted_values: list[float], pct: float) -> float | None:
    """The nearest-rank percentile of values sorted ascending, rounded to 0.1; None when there are none."""
    if not sorted_values:
        return None
    rank = max(1, min(len(sorted_values), round(pct / 100 * len(sorted_values) + 0.5)))
    return round(sorted_values[rank - 1], 1)


def median(values: list[float]) -> float:
    """The median of several runs' figures."""
    return float(statistics.median(values))
