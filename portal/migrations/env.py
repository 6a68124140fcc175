"""Alembic environment: online migrations only, against the URL set by ``portal.migrate``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from portal.models import Base

config = context.config
url = config.get_main_option("sqlalchemy.url")
assert url is not None, "portal.migrate sets sqlalchemy.url"

engine = create_engine(url, poolclass=pool.NullPool)
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=Base.metadata)
    with context.begin_transaction():
        # one migrator at a time: parallel starts (tests, flows, portal) must not race
        connection.exec_driver_sql("SELECT pg_advisory_xact_lock(724311)")
        context.run_migrations()
engine.dispose()
