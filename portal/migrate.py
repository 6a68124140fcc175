"""Database migrations (alembic), configured in code so no ini file has to be found at run time."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from core.settings import Settings

__all__ = ["alembic_config", "upgrade"]

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(settings: Settings) -> Config:
    """Alembic configuration pointing at ``settings.postgres``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    url = settings.postgres.url.render_as_string(hide_password=False)  # sent to alembic's engine
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(settings: Settings, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (idempotent)."""
    command.upgrade(alembic_config(settings), revision)
