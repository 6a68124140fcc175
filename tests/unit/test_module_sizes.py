"""No module of vidflow's own code over 400 lines (issue 10, "Architecture").

A module that long has stopped doing one job: the next engineer has to read all of it to change
any of it. The event contract (``core/events.py``) is the one exception: it is the schema of
every message, kept whole so the contract is read in one place.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("core", "connectors", "dataflows", "portal", "watcher", "vidflow")
MAX_LINES = 400
# The event contract is one schema, read in one place.
CONTRACT = frozenset({"core/events.py"})


def _line_count(path: Path) -> int:
    with path.open("rb") as source:
        return sum(1 for _ in source)


def _modules() -> list[str]:
    return sorted(
        path.relative_to(ROOT).as_posix()
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
    )


def test_every_package_is_looked_at() -> None:
    modules = _modules()
    for package in PACKAGES:
        assert any(m.startswith(f"{package}/") for m in modules), package
    assert set(CONTRACT) <= set(modules)


def test_no_module_is_over_400_lines() -> None:
    exempt = CONTRACT
    too_long = {
        module: lines
        for module in _modules()
        if module not in exempt and (lines := _line_count(ROOT / module)) > MAX_LINES
    }
    assert too_long == {}, f"split these along their seams (over {MAX_LINES} lines): {too_long}"


def test_a_last_line_without_its_newline_still_counts(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("a = 1\n" * MAX_LINES + "b = 2")  # a last line without its newline
    assert _line_count(sample) == MAX_LINES + 1
