"""Reading the projection for pages and the API."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Select, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from portal.models import (
    Chunk,
    DeadLetterReplay,
    DeadLetterRow,
    Rendition,
    TimelineEvent,
    Video,
)

__all__ = [
    "PAGE_SIZE",
    "Letter",
    "VideoDetail",
    "VideoPage",
    "changed_since",
    "dead_letter",
    "dead_letters",
    "timeline",
    "video_detail",
    "video_page",
    "visible_video",
]

PAGE_SIZE = 25


@dataclass(frozen=True)
class VideoPage:
    """One page of the videos list."""

    videos: list[Video]
    total: int
    page: int
    pages: int


@dataclass(frozen=True)
class Letter:
    """A dead letter (projection) with the portal's record of replaying it, if any."""

    letter: DeadLetterRow
    replay: DeadLetterReplay | None


@dataclass(frozen=True)
class VideoDetail:
    """Everything the video page shows."""

    video: Video
    chunks: list[Chunk]
    renditions: list[Rendition]
    timeline: list[TimelineEvent]


async def video_page(
    session: AsyncSession, status: str, search: str, page: int, owner: str | None = None
) -> VideoPage:
    """Videos newest first, filtered by status and a name search (and ``owner`` unless None)."""
    query = select(Video)
    if owner is not None:
        query = query.where(Video.owner == owner)
    if status:
        query = query.where(Video.status == status)
    if search:
        escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        pattern = f"%{escaped}%"
        query = query.where(or_(Video.filename.ilike(pattern), Video.id.ilike(pattern)))
    total = (await session.execute(select(func.count()).select_from(query.subquery()))).scalar_one()
    pages = max(1, -(-total // PAGE_SIZE))
    page = min(max(1, page), pages)
    rows = await session.execute(
        query.order_by(Video.created_ts.desc()).offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE)
    )
    return VideoPage(list(rows.scalars()), total, page, pages)


async def visible_video(session: AsyncSession, video_id: str, owner: str | None) -> Video | None:
    """The video if it exists and belongs to ``owner`` (any owner if None).

    Someone else's video is reported exactly like a missing one, so ids cannot be probed.
    """
    video = await session.get(Video, video_id)
    if video is None or (owner is not None and video.owner != owner):
        return None
    return video


async def video_detail(
    session: AsyncSession, video_id: str, owner: str | None = None
) -> VideoDetail | None:
    """The video with its manifest, renditions and timeline; None if unknown (or not owner's)."""
    video = await visible_video(session, video_id, owner)
    if video is None:
        return None
    chunks = await session.execute(
        select(Chunk).where(Chunk.video_id == video_id).order_by(Chunk.index)
    )
    renditions = await session.execute(
        select(Rendition).where(Rendition.video_id == video_id).order_by(Rendition.height.desc())
    )
    return VideoDetail(
        video,
        list(chunks.scalars()),
        list(renditions.scalars()),
        await timeline(session, video_id),
    )


async def timeline(session: AsyncSession, video_id: str) -> list[TimelineEvent]:
    """A video's applied status events, oldest first."""
    rows = await session.execute(
        select(TimelineEvent)
        .where(TimelineEvent.video_id == video_id)
        .order_by(TimelineEvent.ts, TimelineEvent.seq)
    )
    return list(rows.scalars())


async def changed_since(
    session: AsyncSession, since: float, owner: str | None, limit: int = 200
) -> list[str]:
    """Ids of the videos (of ``owner``; all if None) changed at or after ``since``, oldest
    change first: what a live page that may have missed notifications has to be sent again."""
    query = select(Video.id).where(Video.updated_ts >= since)
    if owner is not None:
        query = query.where(Video.owner == owner)
    rows = await session.execute(query.order_by(Video.updated_ts).limit(limit))
    return list(rows.scalars())


def _letters_query() -> Select[DeadLetterRow, DeadLetterReplay]:
    return select(DeadLetterRow, DeadLetterReplay).outerjoin(
        DeadLetterReplay, DeadLetterReplay.letter_id == DeadLetterRow.id
    )


async def dead_letters(session: AsyncSession, limit: int = 100) -> list[Letter]:
    """The newest dead letters, each with its replay record."""
    rows = await session.execute(_letters_query().order_by(DeadLetterRow.ts.desc()).limit(limit))
    return [Letter(letter, replay) for letter, replay in rows]


async def dead_letter(session: AsyncSession, letter_id: str) -> Letter | None:
    """One dead letter with its replay record; None if unknown."""
    rows = await session.execute(_letters_query().where(DeadLetterRow.id == letter_id))
    found = rows.first()
    return None if found is None else Letter(*found)
