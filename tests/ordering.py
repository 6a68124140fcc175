"""Slowest tests first: the order that lets parallel workers finish together.

Under pytest-xdist (``--dist loadgroup``) each worker takes the next test from one queue in
collection order, so a long test collected last starts last and the run waits for it alone.
Started first, it runs while the short ones fill the other workers. Each run records how long
each test took (set-up, call and tear-down) in pytest's cache; the next run collects the
slowest first. A test the cache has not seen yet (a new test, a cold cache) keeps its place
after the known slow ones and before the known quick ones, at the median duration.
"""

from __future__ import annotations

import statistics

import pytest

KEY = "vidflow/durations"


def _load(config: pytest.Config) -> dict[str, float]:
    cache = getattr(config, "cache", None)  # absent under -p no:cacheprovider
    if cache is None:
        return {}
    stored = cache.get(KEY, {})
    return {k: float(v) for k, v in stored.items()} if isinstance(stored, dict) else {}


def slowest_first(nodeids: list[str], durations: dict[str, float]) -> list[str]:
    """``nodeids`` ordered by recorded duration, longest first; unknown ones at the median;
    ties keep collection order (the sort is stable)."""
    if not durations:
        return list(nodeids)
    median = statistics.median(durations.values())
    return sorted(nodeids, key=lambda nodeid: -durations.get(nodeid, median))


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Reorder in place, on xdist workers only (each reads the same cache, so all collect
    alike); in one process the order gains nothing and would split a module's tests, setting
    up its module fixtures again for each run of them."""
    if not hasattr(config, "workerinput"):
        return
    durations = _load(config)
    by_id = {item.nodeid: item for item in items}
    items[:] = [by_id[nodeid] for nodeid in slowest_first(list(by_id), durations)]


class DurationRecorder:
    """Sums each test's phase durations as reports arrive (on the xdist controller, from
    every worker) and merges them into the cache at the end of the session."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.seen: dict[str, float] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.seen[report.nodeid] = self.seen.get(report.nodeid, 0.0) + report.duration

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        cache = getattr(self.config, "cache", None)
        if cache is None or not self.seen:
            return
        merged = {**_load(self.config), **{k: round(v, 3) for k, v in self.seen.items()}}
        cache.set(KEY, merged)


def pytest_configure(config: pytest.Config) -> None:
    """Record durations in the process that sees every report: the controller, or the only
    process without xdist (an xdist worker has ``workerinput``)."""
    if not hasattr(config, "workerinput"):
        config.pluginmanager.register(DurationRecorder(config), "vidflow-durations")
