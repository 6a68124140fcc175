"""PostgreSQL through SQLAlchemy 2.0 (psycopg 3): one engine per process, created on demand."""

from __future__ import annotations

from functools import cache

from sqlalchemy import Engine, create_engine
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from vidflow.settings import PostgresSettings

__all__ = ["async_engine", "engine"]


@cache
def engine(pg: PostgresSettings) -> Engine:
    """A pooled engine that checks connections before use (the server may have restarted)."""
    return create_engine(pg.url, pool_pre_ping=True, pool_size=5, max_overflow=5)


@cache
def async_engine(pg: PostgresSettings) -> AsyncEngine:
    """The asyncio engine the web portal uses."""
    return create_async_engine(pg.url, pool_pre_ping=True, pool_size=10, max_overflow=20)
