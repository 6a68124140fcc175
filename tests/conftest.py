"""Session fixtures giving tests real services (see ``tests/services.py`` for where from)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import msgspec
import psycopg
import pytest

from core.settings import Settings
from tests.databases import drop_database
from tests.isolation import isolated_copy, remove_isolated
from tests.services import real_services

# under xdist: xdist_group marks that hold (tests/xdist_groups.py), slowest tests first from
# the last run's times (tests/ordering.py)
pytest_plugins = ["tests.xdist_groups", "tests.ordering"]


@pytest.fixture(scope="session")
def settings() -> Iterator[Settings]:
    """Settings whose Kafka, MinIO and PostgreSQL answer for real; failing here fails the run."""
    try:
        with real_services() as (_, resolved):
            yield _worker_database(resolved)
    except Exception as exc:  # noqa: BLE001 - report any start-up failure as the reason
        pytest.fail(f"real services are not available: {type(exc).__name__}: {exc}", pytrace=False)


@pytest.fixture
def isolated_settings(settings: Settings) -> Iterator[Settings]:
    """Like ``settings`` but with fresh topics and a fresh bucket, so tests never share data."""
    isolated = isolated_copy(settings)
    yield isolated
    remove_isolated(isolated)


def _worker_database(settings: Settings) -> Settings:
    """Under pytest-xdist each worker gets a database of its own (migrated), so tests that use
    the session's database never meet another worker's rows; topics and buckets are per test."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker:
        return settings
    from portal.migrate import upgrade

    name = f"{settings.postgres.database}_{worker}"
    drop_database(settings.postgres.dsn, name)
    with psycopg.connect(settings.postgres.dsn, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    own = msgspec.structs.replace(
        settings, postgres=msgspec.structs.replace(settings.postgres, database=name)
    )
    upgrade(own)
    return own
