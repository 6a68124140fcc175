"""Fixtures shared by the portal's integration tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import msgspec
import psycopg
import pytest

from connectors.db import dispose_engine
from core.settings import Settings
from portal.migrate import upgrade


@pytest.fixture
def portal_settings(isolated_settings: Settings, tmp_path: Path) -> Iterator[Settings]:
    """Isolated topics plus a database of its own, migrated, and a home for session files."""
    name = f"t_{uuid.uuid4().hex[:10]}"
    admin = psycopg.connect(isolated_settings.postgres.dsn, autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')
    settings = msgspec.structs.replace(
        isolated_settings,
        home=tmp_path / "home",
        postgres=msgspec.structs.replace(isolated_settings.postgres, database=name),
    )
    upgrade(settings)
    yield settings
    dispose_engine(settings.postgres)
    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()
