"""Making and dropping the test run's own PostgreSQL databases."""

from __future__ import annotations

import time

import psycopg
from psycopg import errors

__all__ = ["drop_database"]

# Refusals that pass: a backend of another role on the database (PostgreSQL's autovacuum, which
# ``WITH (FORCE)`` may not terminate as a non-superuser: "must be a member of the role whose
# process is being terminated") or one that has not gone yet.
PASSING = (errors.InsufficientPrivilege, errors.ObjectInUse)


def drop_database(dsn: str, name: str, timeout: float = 20.0) -> None:
    """Drop ``name`` (with its connections), asking again while the refusal is one that
    passes; the admin connection is closed whatever happens."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(dsn, autocommit=True) as admin:
        while True:
            try:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                return
            except PASSING:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
