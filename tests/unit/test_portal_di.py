"""The portal's handlers get their dependencies from Litestar's dependency injection
(``portal.deps``): none takes the app's ``State`` and reads it by hand, and no module but the
providers and the app factory reaches into ``app.state``."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

from litestar.datastructures import State

from core.settings import Settings
from portal.app import create_app

PORTAL = Path(__file__).resolve().parents[2] / "portal"
# the one module that reads the state (the providers) and the one that fills it (the factory)
STATE_OWNERS = {PORTAL / "deps.py", PORTAL / "app.py"}


def test_no_handler_takes_the_app_state() -> None:
    app = create_app(Settings())  # connects to nothing: services are reached in the lifespan
    handlers = [h for route in app.routes for h in getattr(route, "route_handlers", [])]
    assert len(handlers) >= 30  # the walk found the portal's handlers
    taking_state = sorted(
        f"{h.handler_name} ({', '.join(sorted(h.paths))})"
        for h in handlers
        if any(
            name == "state" or p.annotation in (State, "State")
            for name, p in inspect.signature(h.fn).parameters.items()
        )
    )
    assert taking_state == []


def _state_readers(path: Path) -> list[str]:
    """Where ``path`` imports Litestar's ``State`` or reads ``<something>.state.<name>``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "litestar.datastructures":
            if any(alias.name == "State" for alias in node.names):
                found.append(f"{path.name}:{node.lineno} imports State")
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Attribute)
            and node.value.attr == "state"
        ):
            found.append(f"{path.name}:{node.lineno} reads .state.{node.attr}")
    return found


def test_only_the_providers_read_the_app_state() -> None:
    modules = [p for p in PORTAL.rglob("*.py") if "migrations" not in p.parts]
    assert len(modules) > 40
    readers = [hit for p in modules if p not in STATE_OWNERS for hit in _state_readers(p)]
    assert readers == []
    # the check does see a reader where there is one
    assert _state_readers(PORTAL / "deps.py")
