"""Wilson intervals on hand-computed cases, and the rule that a difference inside them is no win."""
import math

import pytest

from madvae.intervals import count, half_width, interval, separated, wilson

Z = 1.959963984540054  # the 97.5% normal quantile


def by_hand(k, n):
    """The Wilson score interval written out: (p + z^2/2n -+ z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)."""
    p = k / n
    centre, spread = p + Z * Z / (2 * n), Z * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n))
    return (centre - spread) / (1 + Z * Z / n), (centre + spread) / (1 + Z * Z / n)


@pytest.mark.parametrize("k, n, expected", [
    (5, 10, (0.2366, 0.7634)),  # worked on paper: centre 0.5, half-width 1.4160 * 0.18602
    (0, 10, (0.0, 0.2775)),  # no successes: the interval still reaches 0.28
    (10, 10, (0.7225, 1.0)),
    (9914, 10000, (0.9894, 0.9930)),  # the full-MNIST clean accuracy
])
def test_wilson_matches_the_hand_computed_interval(k, n, expected):
    low, high = wilson(k, n)
    assert (round(low, 4), round(high, 4)) == expected
    assert (low, high) == pytest.approx(by_hand(k, n), abs=1e-12)


def test_cells_read_their_count_and_refuse_what_has_none():
    assert count(0.15625, 32) == 5 and interval(0.15625, 32) == wilson(5, 32)
    assert interval(None, 32) is None and interval(0.5, None) is None and half_width(0.5, 0) is None
    assert half_width(0.5, 10) == pytest.approx((0.7634 - 0.2366) / 2, abs=1e-4)
    with pytest.raises(ValueError):
        wilson(11, 10)


def test_a_difference_inside_the_intervals_is_no_win():
    assert not separated(0.9656, 10000, 0.9660, 10000)  # 4 images in 10,000
    assert separated(0.9656, 10000, 0.9826, 10000)
    assert not separated(0.40, 60, 0.55, 60)  # Table 3's 60 digits: 15 points apart and still no win
    assert separated(0.5, None, 0.6, None) and not separated(0.5, None, 0.5, None)  # no counts: exact
