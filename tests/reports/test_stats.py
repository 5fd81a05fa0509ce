"""Intervals over seeds: the t-interval's known values, min–max for two runs, none for one, and the
three-valued threshold and overlap checks the report's verdicts and marks rest on."""
import math

import pytest

from reports.stats import RANGE, SINGLE, T95, Stat, all_of, at_most, distinguishable, ratio


@pytest.mark.parametrize("values, mean, half, kind", [
    ([1.0, 2.0, 3.0], 2.0, 4.302652729749464 * 1.0 / math.sqrt(3), T95),     # t(0.975, 2) = 4.3027
    ([10, 12, 14, 16, 18], 14.0, 2.7764451051977934 * math.sqrt(10) / math.sqrt(5), T95),  # t(0.975, 4)
    ([5.0, 5.0, 5.0], 5.0, 0.0, T95),
])
def test_t_interval(values, mean, half, kind):
    s = Stat.of(values)
    assert (s.mean, s.kind, s.n) == (pytest.approx(mean), kind, len(values))
    assert (s.lo, s.hi) == (pytest.approx(mean - half), pytest.approx(mean + half))


def test_two_runs_give_min_max_and_one_run_no_interval():
    two, one = Stat.of([3.0, None, 1.0]), Stat.of([7.0])
    assert (two.mean, two.lo, two.hi, two.n, two.kind, two.has_interval) == (2.0, 1.0, 3.0, 2, RANGE, True)
    assert (one.lo, one.hi, one.n, one.kind, one.has_interval) == (7.0, 7.0, 1, SINGLE, False)
    assert Stat.of([None, float("nan")]) is None


@pytest.mark.parametrize("values, text", [
    ([1.0, 2.0, 3.0], "2 ± 2.484 (n=3)"), ([1.0, 3.0], "2 (1–3, n=2)"), ([4.0], "4"), ([4.0, 4.0, 4.0], "4"),
])
def test_cell_text(values, text):
    assert Stat.of(values).text(lambda x: f"{x:.4g}") == text


@pytest.mark.parametrize("a, b, expected", [
    ([1.0, 1.1, 1.2], [2.0, 2.1, 2.2], True),    # [0.85, 1.35] vs [1.85, 2.35]: apart
    ([1.0, 1.5, 2.0], [2.0, 2.1, 2.2], False),   # overlap
    ([1.0], [5.0], False),                       # single runs: never distinguishable
    ([1.0, 1.1], [1.2, 1.3], True),              # min–max ranges apart
])
def test_distinguishable(a, b, expected):
    assert distinguishable(Stat.of(a), Stat.of(b)) is expected


@pytest.mark.parametrize("lo, hi, known, expected", [
    (0.5, 0.6, True, True), (0.61, 0.7, True, False), (0.5, 0.7, True, None), (0.1, 0.1, False, None),
])
def test_at_most_threshold(lo, hi, known, expected):
    assert at_most(lo, hi, 0.6, known) is expected


def test_ratio_and_three_valued_and():
    assert ratio(Stat.of([2.0, 4.0]), Stat.of([8.0, 10.0])) == (0.2, 0.5)
    assert all_of([True, True]) is True and all_of([True, None]) is None and all_of([None, False]) is False
