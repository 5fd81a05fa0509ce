"""bench/seqlen.py: the length a batch of a run's data is padded to."""
import pytest

from bench.seqlen import expected_longest


@pytest.mark.parametrize("lengths,b,expected", [
    ([5], 1, 5),
    ([1, 2, 3, 4], 2, 3),        # pairs' longest: 2,3,4,3,4,4 -> 20/6
    ([1, 2, 3, 4], 4, 4),
    ([10, 20, 30], 2, 27),       # 20,30,30 -> 80/3
    ([7, 7, 7], 2, 7),
    ([1, 2], 3, None),
    ([1, 2, 3, 4], 3, 4),        # triples' longest: 3,4,4,4 -> 15/4
])
def test_expected_longest(lengths, b, expected):
    assert expected_longest(lengths, b) == expected
