"""The local stack's PostgreSQL set-up when several processes bring the stack up at once."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import msgspec
import psycopg

from core.settings import Settings
from tests.databases import drop_database
from vidflow.stack.postgres import Postgres
from vidflow.stack.service import StackPaths


def test_many_callers_making_the_role_and_database_at_once_all_succeed(settings: Settings) -> None:
    """A fresh CI run: four pytest workers each bring the stack up and each makes the role and
    the database if missing. Two seeing "missing" at once made one die with UniqueViolation
    (187 tests errored at set-up); every caller must end with the database there."""
    name = f"race_{uuid.uuid4().hex[:12]}"
    fresh = msgspec.structs.replace(
        settings, postgres=msgspec.structs.replace(settings.postgres, database=name)
    )
    paths = StackPaths(Path(settings.home).resolve())
    service = Postgres()
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            calls = [pool.submit(service.after_start, fresh, paths) for _ in range(8)]
            failures = [c.exception() for c in calls if c.exception() is not None]
        assert failures == []
        with psycopg.connect(fresh.postgres.dsn, connect_timeout=5) as conn:
            assert conn.execute("select current_database()").fetchone() == (name,)
    finally:
        drop_database(settings.postgres.dsn, name)
