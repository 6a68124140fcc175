"""What a replay command picks: which videos, which dead letters, from when; and the short-lived
database sessions the selections are read with."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import click
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from core.settings import Settings

__all__ = ["LetterSelection", "VideoSelection", "parse_since", "sessions"]

_RELATIVE = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


@dataclass(frozen=True)
class VideoSelection:
    """Which videos to reprocess: one, those created since a moment, those in a status, or all
    (every field empty); ``since`` and ``status`` combine."""

    video_id: str | None = None
    since: float | None = None
    status: str | None = None


@dataclass(frozen=True)
class LetterSelection:
    """Which dead letters to resend: one, those of a stage, or all (every field empty)."""

    letter_id: str | None = None
    stage: str | None = None


def parse_since(text: str, now: datetime | None = None) -> float:
    """``2h``/``30m``/``1d``/``90s`` ago, or an ISO 8601 moment (UTC when it has no zone)."""
    found = _RELATIVE.match(text.strip())
    if found:
        ago = timedelta(**{_UNITS[found.group(2)]: int(found.group(1))})
        return ((now or datetime.now(UTC)) - ago).timestamp()
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise click.BadParameter(f"{text!r} is neither 2h/30m/1d nor an ISO 8601 time") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


@asynccontextmanager
async def sessions(settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """A short-lived pool for one command, disposed in the loop that opened it."""
    engine = create_async_engine(settings.postgres.url, pool_pre_ping=True)
    try:
        yield async_sessionmaker(engine, expire_on_commit=False)
    finally:
        await engine.dispose()
