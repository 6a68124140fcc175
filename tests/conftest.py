"""Session fixtures giving tests real services (see ``tests/services.py`` for where from)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from core.settings import Settings
from tests.isolation import isolated_copy, remove_isolated
from tests.services import real_services


@pytest.fixture(scope="session")
def settings() -> Iterator[Settings]:
    """Settings whose Kafka, MinIO and PostgreSQL answer for real; failing here fails the run."""
    try:
        with real_services() as (_, resolved):
            yield resolved
    except Exception as exc:  # noqa: BLE001 - report any start-up failure as the reason
        pytest.fail(f"real services are not available: {type(exc).__name__}: {exc}", pytrace=False)


@pytest.fixture
def isolated_settings(settings: Settings) -> Iterator[Settings]:
    """Like ``settings`` but with fresh topics and a fresh bucket, so tests never share data."""
    isolated = isolated_copy(settings)
    yield isolated
    remove_isolated(isolated)
