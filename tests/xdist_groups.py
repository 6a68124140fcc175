"""``xdist_group`` marks that hold under pytest 9 (``--dist loadgroup``).

pytest-xdist (3.8) groups tests by appending ``@<group>`` to each marked test's id on the
worker, through ``item._nodeid``; pytest 9 keeps the id in ``item._id`` and ignores that
attribute, so the marks silently did nothing and the tests of one module fixture (the test
stack of ``tests/integration/test_stack.py``) went to several workers, each starting its own
stack. This sets the suffix where pytest reads it, only when xdist's did not take.
"""

from __future__ import annotations

import pytest


def group_of(item: pytest.Item) -> str | None:
    """The group name xdist would give ``item`` (its marks' names, sorted, joined by ``_``)."""
    names = {
        str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
        for mark in item.iter_markers("xdist_group")
    }
    return "_".join(sorted(names)) if names else None


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not getattr(config.option, "loadgroup", False):  # set on xdist workers under loadgroup
        return
    from _pytest.nodeid import NodeId  # pytest 9's id type (absent before: nothing to mend)

    for item in items:
        group = group_of(item)
        if group is not None and "@" not in item.nodeid:
            item._id = NodeId.parse(f"{item.nodeid}@{group}")
