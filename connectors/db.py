"""PostgreSQL through SQLAlchemy 2.0 (psycopg 3): one pooled engine per database, made on demand.

Engines are kept per :class:`PostgresSettings` so every caller in a process shares one pool;
:func:`dispose_engine` closes and forgets the pool of one database (before it is dropped, or
when a test is done with it) without touching the pools of others.
"""

from __future__ import annotations

from sqlalchemy import Engine, create_engine
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from core.settings import PostgresSettings

__all__ = ["async_engine", "dispose_engine", "engine"]

_engines: dict[PostgresSettings, Engine] = {}
_async_engines: dict[PostgresSettings, AsyncEngine] = {}


def engine(pg: PostgresSettings) -> Engine:
    """A pooled engine that checks connections before use (the server may have restarted)."""
    if pg not in _engines:
        _engines[pg] = create_engine(pg.url, pool_pre_ping=True, pool_size=5, max_overflow=5)
    return _engines[pg]


def async_engine(pg: PostgresSettings) -> AsyncEngine:
    """The asyncio engine the web portal uses; its owner disposes it in its own event loop."""
    if pg not in _async_engines:
        _async_engines[pg] = create_async_engine(
            pg.url, pool_pre_ping=True, pool_size=10, max_overflow=20
        )
    return _async_engines[pg]


def dispose_engine(pg: PostgresSettings) -> None:
    """Close the synchronous pool of ``pg`` and forget both engines of it.

    The asyncio engine is only forgotten here: its connections belong to the event loop that
    opened them, and the portal's lifespan closes them there.
    """
    sync = _engines.pop(pg, None)
    if sync is not None:
        sync.dispose()
    _async_engines.pop(pg, None)
