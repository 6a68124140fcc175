"""The order the parallel test run hands tests out in (tests/ordering.py): slowest first."""

from __future__ import annotations

from tests.ordering import slowest_first


def test_known_tests_go_slowest_first_and_ties_keep_collection_order() -> None:
    durations = {"a": 1.0, "b": 30.0, "c": 1.0, "d": 5.0}
    assert slowest_first(["a", "b", "c", "d"], durations) == ["b", "d", "a", "c"]


def test_an_unknown_test_waits_at_the_median_of_the_known_ones() -> None:
    durations = {"quick": 0.1, "middle": 2.0, "slow": 60.0}
    ordered = slowest_first(["quick", "new", "middle", "slow"], durations)
    assert ordered == ["slow", "new", "middle", "quick"]  # the median ties with "middle"


def test_with_no_times_recorded_the_collection_order_stays() -> None:
    assert slowest_first(["z", "a", "m"], {}) == ["z", "a", "m"]
