"""95% Wilson score intervals for the accuracies and agreements in every table (scipy's binomtest), and the rule
that a difference inside them is no win: two cells differ only when their intervals do not overlap."""
from __future__ import annotations

CONFIDENCE = 0.95


def count(fraction: float, n: int) -> int:
    """The k of a fraction k / n read from a result (fractions are stored as floats)."""
    return int(round(fraction * n))


def wilson(k: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The Wilson score interval of k successes in n trials."""
    from scipy.stats import binomtest  # scipy comes with umap-learn; imported late, it is slow to import

    if n < 1 or not 0 <= k <= n:
        raise ValueError(f"no interval for {k} of {n}")
    found = binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    return float(found.low), float(found.high)


def interval(fraction: float | None, n: int | None) -> tuple[float, float] | None:
    """The interval of a cell's fraction over its n images; None where either is unknown."""
    if fraction is None or not n or fraction != fraction:
        return None
    return wilson(count(fraction, n), n)


def half_width(fraction: float | None, n: int | None) -> float | None:
    found = interval(fraction, n)
    return None if found is None else (found[1] - found[0]) / 2


def separated(a: float, n_a: int | None, b: float, n_b: int | None) -> bool:
    """Whether two cells differ beyond their 95% intervals (the intervals do not overlap). Without the counts
    (an older result) only equal values are the same."""
    first, second = interval(a, n_a), interval(b, n_b)
    if first is None or second is None:
        return a != b
    return first[1] < second[0] or second[1] < first[0]
