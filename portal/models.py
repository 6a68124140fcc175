"""The projection's tables (SQLAlchemy 2.0). Kafka is the log of record: all of this can be rebuilt.

Migrations in ``portal/migrations`` create exactly these tables; ``PROJECTION_TABLES`` names the
ones a rebuild truncates (users, tokens, uploads and dead-letter replays are the portal's own
state and stay).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Float, ForeignKey, Integer, String, Text, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "PROJECTION_TABLES",
    "ApiToken",
    "Base",
    "Chunk",
    "ConsumerOffset",
    "DeadLetterReplay",
    "DeadLetterRow",
    "Rendition",
    "RunProgress",
    "TimelineEvent",
    "Upload",
    "User",
    "Video",
    "VideoTombstone",
]


class Base(DeclarativeBase):
    """Declarative base of every portal table."""


def _now() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


class User(Base):
    """A person (or producer) who can log in; passwords are argon2 hashes."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    password_hash: Mapped[str] = mapped_column(Text, nullable=False)
    role: Mapped[str] = mapped_column(String(16), nullable=False, default="viewer")
    created_at: Mapped[datetime] = _now()


class ApiToken(Base):
    """A bearer token for producers; only its SHA-256 is stored.

    A request made with it may do what both its user's role and its ``scope`` (read, upload,
    admin; a check constraint of the migration) allow, until ``expires_at`` (never when empty)
    or ``revoked_at``. ``last_used_at`` is written at most once a minute, not per request.
    """

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    name: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    scope: Mapped[str] = mapped_column(String(16), nullable=False, default="read")
    created_at: Mapped[datetime] = _now()
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Video(Base):
    """One video and where it stands, as the status events say."""

    __tablename__ = "videos"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    filename: Mapped[str] = mapped_column(Text, nullable=False, default="")
    owner: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    origin: Mapped[str] = mapped_column(String(16), nullable=False, default="")
    status: Mapped[str] = mapped_column(String(24), nullable=False, default="ingesting")
    stage: Mapped[str] = mapped_column(String(24), nullable=False, default="ingest")
    progress: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    error: Mapped[str] = mapped_column(Text, nullable=False, default="")
    profile: Mapped[str] = mapped_column(String(64), nullable=False, default="default")
    job_id: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    size: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    source_key: Mapped[str] = mapped_column(Text, nullable=False, default="")
    composite_sha256: Mapped[str] = mapped_column(String(80), nullable=False, default="")
    probe: Mapped[dict[str, Any] | None] = mapped_column(JSONB, nullable=True)
    master: Mapped[str] = mapped_column(Text, nullable=False, default="")
    poster: Mapped[str] = mapped_column(Text, nullable=False, default="")
    sprite: Mapped[str] = mapped_column(Text, nullable=False, default="")
    sprite_vtt: Mapped[str] = mapped_column(Text, nullable=False, default="")
    created_ts: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    updated_ts: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)


class Chunk(Base):
    """One entry of a source's chunk manifest."""

    __tablename__ = "chunks"
    video_id: Mapped[str] = mapped_column(
        ForeignKey("videos.id", ondelete="CASCADE"), primary_key=True
    )
    index: Mapped[int] = mapped_column(Integer, primary_key=True)
    offset: Mapped[int] = mapped_column(BigInteger, nullable=False)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    deduplicated: Mapped[bool] = mapped_column(nullable=False, default=False)


class Rendition(Base):
    """A finished rung of a video's ladder."""

    __tablename__ = "renditions"
    video_id: Mapped[str] = mapped_column(
        ForeignKey("videos.id", ondelete="CASCADE"), primary_key=True
    )
    height: Mapped[int] = mapped_column(Integer, primary_key=True)
    width: Mapped[int] = mapped_column(Integer, nullable=False)
    key: Mapped[str] = mapped_column(Text, nullable=False)
    hls: Mapped[str] = mapped_column(Text, nullable=False)
    bandwidth: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    job_id: Mapped[str] = mapped_column(String(64), nullable=False, default="")


class RunProgress(Base):
    """The last applied ``seq`` of each (video, run): how duplicates and reorders are refused."""

    __tablename__ = "run_progress"
    video_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    run: Mapped[str] = mapped_column(String(128), primary_key=True)
    last_seq: Mapped[int] = mapped_column(Integer, nullable=False)


class TimelineEvent(Base):
    """Every applied status event, for a video's timeline."""

    __tablename__ = "timeline"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    video_id: Mapped[str] = mapped_column(String(64), index=True, nullable=False)
    run: Mapped[str] = mapped_column(String(128), nullable=False)
    seq: Mapped[int] = mapped_column(Integer, nullable=False)
    type: Mapped[str] = mapped_column(String(32), nullable=False)
    ts: Mapped[float] = mapped_column(Float, nullable=False)
    summary: Mapped[str] = mapped_column(Text, nullable=False, default="")
    body: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)


class DeadLetterRow(Base):
    """A message no flow could use, with its raw bytes, for the operations page and replay."""

    __tablename__ = "dead_letters"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    source_topic: Mapped[str] = mapped_column(Text, nullable=False)
    partition: Mapped[int] = mapped_column(Integer, nullable=False)
    offset: Mapped[int] = mapped_column(BigInteger, nullable=False)
    original_key: Mapped[str] = mapped_column(Text, nullable=False, default="")
    raw: Mapped[bytes] = mapped_column(nullable=False)
    error: Mapped[str] = mapped_column(Text, nullable=False)
    stage: Mapped[str] = mapped_column(String(32), nullable=False, default="")
    ts: Mapped[float] = mapped_column(Float, nullable=False)


class DeadLetterReplay(Base):
    """The portal's record of replaying a dead letter: its own state, not the log's, so it lives
    outside ``PROJECTION_TABLES`` (a rebuild keeps it and rebuilt tables equal the live ones).

    ``status`` is ``sending`` while the message is on its way to Kafka (committed before the
    network I/O, so no row lock or pooled connection waits on the broker), then ``replayed``
    or ``failed`` (with ``error``).
    """

    __tablename__ = "dead_letter_replays"
    letter_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="sending")
    count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    requested_at: Mapped[datetime] = _now()
    replayed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    error: Mapped[str] = mapped_column(Text, nullable=False, default="", server_default="")


class Upload(Base):
    """A resumable browser upload: the S3 multipart upload behind it and who started it."""

    __tablename__ = "uploads"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    filename: Mapped[str] = mapped_column(Text, nullable=False)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    part_size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    key: Mapped[str] = mapped_column(Text, nullable=False)
    s3_upload_id: Mapped[str] = mapped_column(Text, nullable=False)
    profile: Mapped[str] = mapped_column(String(64), nullable=False, default="default")
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="open")
    created_at: Mapped[datetime] = _now()
    video_id: Mapped[str] = mapped_column(String(64), nullable=False, default="", server_default="")
    # when a completion claimed it (status ``composing``): a claim left by a crash goes stale
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class VideoTombstone(Base):
    """A deleted video: no later event of it (a late unit event, a replay) brings it back.

    Not in :data:`PROJECTION_TABLES`: a rebuild keeps the tombstones, so a video stays dropped
    even when the topic no longer holds its ``video.deleted`` (retention)."""

    __tablename__ = "video_tombstones"
    video_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64), nullable=False)
    requested_by: Mapped[str] = mapped_column(
        String(64), nullable=False, default="", server_default=""
    )
    ts: Mapped[float] = mapped_column(Float, nullable=False)


class ConsumerOffset(Base):
    """The next offset to read per topic partition, committed with the projection it produced."""

    __tablename__ = "consumer_offsets"
    topic: Mapped[str] = mapped_column(Text, primary_key=True)
    partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    next_offset: Mapped[int] = mapped_column(BigInteger, nullable=False)


PROJECTION_TABLES: tuple[str, ...] = (
    "chunks",
    "renditions",
    "run_progress",
    "timeline",
    "dead_letters",
    "consumer_offsets",
    "videos",
)
