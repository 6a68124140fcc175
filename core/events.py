"""The event contract: the one place every message shape of every vidflow topic is written down.

Every event is a msgspec Struct tagged by ``type`` and carrying ``v`` (schema version), ``id``
(unique and deterministic, so a re-emitted event is recognisably the same), ``ts`` (seconds since
the epoch) and the field its topic is keyed by (``stream_id``, ``upload_id`` or ``video_id``;
``Event.partition_key`` returns it). Messages are JSON, so any Kafka client in any language can
produce them; ``docs/events.md`` shows examples.

Decoding never raises past :func:`decode`: a payload that is not JSON, has an unknown ``type``
or ``v``, misses a field or has one of the wrong type raises :class:`DecodeError` with a
message that says which, and :func:`try_decode` returns that error as a value so a consumer
can route it to ``vidflow.dlq`` (:func:`dead_letter`) instead of dying.
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated, ClassVar, Literal, TypeAlias

import msgspec

__all__ = [
    "SCHEMA_VERSION",
    "ChunkRef",
    "ChunkStored",
    "DeadLetter",
    "DecodeError",
    "Event",
    "FileChanged",
    "FileClosed",
    "FileDeleted",
    "FileEvent",
    "IngestCompleted",
    "IngestRestarted",
    "IngestStarted",
    "JobCancelled",
    "JobCompleted",
    "JobEvent",
    "JobFailed",
    "Manifest",
    "Probe",
    "ProbeCompleted",
    "Rendition",
    "RenditionCompleted",
    "RenditionFailed",
    "SourceRef",
    "StatusBase",
    "StatusEvent",
    "TranscodeCancel",
    "TranscodeRequested",
    "UnitProgress",
    "UnitStarted",
    "UploadCompleted",
    "UploadEvent",
    "dead_letter",
    "decode",
    "encode",
    "event_id",
    "now",
    "try_decode",
]

SCHEMA_VERSION = 1
_ID_NAMESPACE = uuid.UUID("6f1d8c52-4a0e-4d3b-9a57-0c6e2b1f9a10")

NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]
NonNegInt = Annotated[int, msgspec.Meta(ge=0)]
NonNegFloat = Annotated[float, msgspec.Meta(ge=0)]
Sha256Hex = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$")]
Percent = Annotated[float, msgspec.Meta(ge=0, le=100)]


def now() -> float:
    """Event timestamp: seconds since the epoch."""
    return time.time()


def event_id(*parts: object) -> str:
    """A deterministic id from the facts that make an event unique, so duplicates share it."""
    return str(uuid.uuid5(_ID_NAMESPACE, "\x1f".join(str(p) for p in parts)))


class DecodeError(ValueError):
    """A message that is not a valid vidflow event; the text says why."""


class Event(msgspec.Struct, kw_only=True, frozen=True, tag_field="type"):
    """Fields every event carries. Subclasses set ``topic`` and their key field."""

    topic: ClassVar[str]
    key_field: ClassVar[str]

    id: NonEmpty
    ts: NonNegFloat = msgspec.field(default_factory=now)
    v: int = SCHEMA_VERSION

    @property
    def partition_key(self) -> str:
        """The Kafka message key: the field this event's topic is partitioned by."""
        value: str = getattr(self, self.key_field)
        return value

    @property
    def type(self) -> str:
        """The event's ``type`` tag, as written on the wire."""
        tag: str = self.__struct_config__.tag  # type: ignore[assignment]
        return tag


# ---------------------------------------------------------------- shared value records


class Probe(msgspec.Struct, kw_only=True, frozen=True):
    """What ffprobe says of a source; dimensions are as stored, before rotation."""

    duration: NonNegFloat
    width: NonNegInt
    height: NonNegInt
    rotation: int = 0
    fps: NonNegFloat = 0.0
    bit_rate: NonNegInt = 0
    video_codec: str = ""
    audio_codec: str | None = None
    has_audio: bool = False
    format_name: str = ""
    variable_frame_rate: bool = False


class ChunkRef(msgspec.Struct, kw_only=True, frozen=True, array_like=False):
    """One chunk of a source, in order."""

    index: NonNegInt
    offset: NonNegInt
    size: NonNegInt
    sha256: Sha256Hex


class Manifest(msgspec.Struct, kw_only=True, frozen=True):
    """The ordered chunk list of a source, written to ``sources/{video}/manifest.json``."""

    video_id: NonEmpty
    size: NonNegInt
    chunks: list[ChunkRef]
    composite_sha256: str
    sha256: Sha256Hex
    source_key: NonEmpty


class SourceRef(msgspec.Struct, kw_only=True, frozen=True):
    """Where a verified source lives."""

    bucket: NonEmpty
    key: NonEmpty
    size: NonNegInt
    sha256: Sha256Hex


class Rendition(msgspec.Struct, kw_only=True, frozen=True):
    """One rung of a finished ladder."""

    height: NonNegInt
    width: NonNegInt
    key: NonEmpty
    hls: NonEmpty
    bandwidth: NonNegInt = 0
    codecs: str = ""


# ---------------------------------------------------------------- vidflow.file-events


class _FileEvent(Event, frozen=True, kw_only=True):
    topic: ClassVar[str] = "file-events"
    key_field: ClassVar[str] = "stream_id"

    stream_id: NonEmpty
    host: str
    path: NonEmpty


class FileChanged(_FileEvent, frozen=True, kw_only=True, tag="file.changed"):
    """A watched file has this size now (it may still be growing)."""

    size: NonNegInt
    mtime: float
    inode: NonNegInt = 0


class FileClosed(_FileEvent, frozen=True, kw_only=True, tag="file.closed"):
    """The writer closed the file: a hint, not the end (see ``dataflows/ingest/completion.py``)."""

    size: NonNegInt
    mtime: float
    inode: NonNegInt = 0


class FileDeleted(_FileEvent, frozen=True, kw_only=True, tag="file.deleted"):
    """The file is gone; an unfinished stream for it is abandoned."""


# ---------------------------------------------------------------- vidflow.uploads


class UploadCompleted(Event, frozen=True, kw_only=True, tag="upload.completed"):
    """An object landed in the bucket and should become a video."""

    topic: ClassVar[str] = "uploads"
    key_field: ClassVar[str] = "upload_id"

    upload_id: NonEmpty
    bucket: NonEmpty
    key: NonEmpty
    size: NonNegInt
    filename: str = ""
    owner: str = ""
    profile: str = "default"


# ---------------------------------------------------------------- vidflow.jobs


class _JobEvent(Event, frozen=True, kw_only=True):
    topic: ClassVar[str] = "jobs"
    key_field: ClassVar[str] = "video_id"

    video_id: NonEmpty


class TranscodeRequested(_JobEvent, frozen=True, kw_only=True, tag="transcode.requested"):
    """Make the ladder of renditions for a verified source."""

    job_id: NonEmpty
    source: SourceRef
    probe: Probe
    profile: str = "default"
    reason: Literal["ingest", "replay", "reprocess"] = "ingest"
    filename: str = ""
    owner: str = ""


class TranscodeCancel(_JobEvent, frozen=True, kw_only=True, tag="transcode.cancel"):
    """Stop the running job of a video (or only ``job_id`` when given).

    ``plan`` is set only by the transcode flow itself when a unit failed for good: it stops the
    job's other units in that one planning of the job, so replaying the topic never cancels a
    later run of the same job.
    """

    job_id: str | None = None
    plan: str | None = None


# ---------------------------------------------------------------- vidflow.status


class StatusBase(Event, frozen=True, kw_only=True):
    """Fields of every status event; ``seq`` orders the events of one ``run`` (ingest or job)."""

    topic: ClassVar[str] = "status"
    key_field: ClassVar[str] = "video_id"

    video_id: NonEmpty
    run: NonEmpty
    seq: NonNegInt


class IngestStarted(StatusBase, frozen=True, kw_only=True, tag="ingest.started"):
    """A new source began arriving."""

    origin: Literal["watch", "upload"]
    filename: str = ""
    owner: str = ""
    stream_id: str = ""


class ChunkStored(StatusBase, frozen=True, kw_only=True, tag="chunk.stored"):
    """A chunk is durable in the object store (``deduplicated``: it already was)."""

    chunk: ChunkRef
    deduplicated: bool = False
    bytes_so_far: NonNegInt = 0


class IngestRestarted(StatusBase, frozen=True, kw_only=True, tag="ingest.restarted"):
    """The file shrank or was replaced: what was read is dropped and the stream starts over."""

    reason: str


class IngestCompleted(StatusBase, frozen=True, kw_only=True, tag="ingest.completed"):
    """The source is composed and verified against its full SHA-256."""

    manifest: Manifest


class ProbeCompleted(StatusBase, frozen=True, kw_only=True, tag="probe.completed"):
    """ffprobe read the source."""

    probe: Probe


class UnitStarted(StatusBase, frozen=True, kw_only=True, tag="unit.started"):
    """An FFmpeg encode unit started (``heights``: the rungs it makes)."""

    job_id: NonEmpty
    unit: NonEmpty
    heights: list[NonNegInt]
    attempt: int = 1


class UnitProgress(StatusBase, frozen=True, kw_only=True, tag="unit.progress"):
    """How far an encode unit is."""

    job_id: NonEmpty
    unit: NonEmpty
    percent: Percent
    fps: NonNegFloat = 0.0
    speed: NonNegFloat = 0.0


class RenditionCompleted(StatusBase, frozen=True, kw_only=True, tag="rendition.completed"):
    """A rung is written (MP4 and HLS)."""

    job_id: NonEmpty
    rendition: Rendition


class RenditionFailed(StatusBase, frozen=True, kw_only=True, tag="rendition.failed"):
    """An encode unit failed; ``final`` when no retry follows."""

    job_id: NonEmpty
    height: NonNegInt
    error: str
    attempt: int = 1
    final: bool = False


class JobCompleted(StatusBase, frozen=True, kw_only=True, tag="job.completed"):
    """Every rung is done; the master playlist, poster and sprite are written."""

    job_id: NonEmpty
    renditions: list[Rendition]
    master: str
    poster: str = ""
    sprite: str = ""
    sprite_vtt: str = ""
    warnings: list[str] = msgspec.field(default_factory=list)  # shown to users, never fatal


class JobFailed(StatusBase, frozen=True, kw_only=True, tag="job.failed"):
    """The video cannot be processed; ``reason`` is for people."""

    reason: str
    job_id: str = ""
    stage: Literal["ingest", "probe", "transcode"] = "transcode"


class JobCancelled(StatusBase, frozen=True, kw_only=True, tag="job.cancelled"):
    """The job was stopped on request and its partial outputs removed."""

    job_id: NonEmpty


# ---------------------------------------------------------------- vidflow.dlq


class DeadLetter(Event, frozen=True, kw_only=True, tag="dead.letter"):
    """A message no flow could use, kept whole with the reason (``raw`` is base64 in JSON)."""

    topic: ClassVar[str] = "dlq"
    key_field: ClassVar[str] = "original_key"

    original_key: str
    source_topic: str
    partition: int
    offset: int
    raw: bytes
    error: str
    stage: str = ""


FileEvent: TypeAlias = FileChanged | FileClosed | FileDeleted
UploadEvent: TypeAlias = UploadCompleted
JobEvent: TypeAlias = TranscodeRequested | TranscodeCancel
StatusEvent: TypeAlias = (
    IngestStarted
    | ChunkStored
    | IngestRestarted
    | IngestCompleted
    | ProbeCompleted
    | UnitStarted
    | UnitProgress
    | RenditionCompleted
    | RenditionFailed
    | JobCompleted
    | JobFailed
    | JobCancelled
)
AnyEvent: TypeAlias = FileEvent | UploadEvent | JobEvent | StatusEvent | DeadLetter

_ALL_TYPES: tuple[type[Event], ...] = (
    FileChanged,
    FileClosed,
    FileDeleted,
    UploadCompleted,
    TranscodeRequested,
    TranscodeCancel,
    IngestStarted,
    ChunkStored,
    IngestRestarted,
    IngestCompleted,
    ProbeCompleted,
    UnitStarted,
    UnitProgress,
    RenditionCompleted,
    RenditionFailed,
    JobCompleted,
    JobFailed,
    JobCancelled,
    DeadLetter,
)
TYPES: dict[str, type[Event]] = {t.__struct_config__.tag: t for t in _ALL_TYPES}  # type: ignore[misc]


class _Envelope(msgspec.Struct):
    """Just enough of a message to say which schema it claims."""

    type: str | None = None
    v: int | None = None


_envelope_decoder = msgspec.json.Decoder(_Envelope)
_decoders: dict[str, msgspec.json.Decoder[AnyEvent]] = {
    tag: msgspec.json.Decoder(cls) for tag, cls in TYPES.items()
}
_encoder = msgspec.json.Encoder()


def encode(event: Event) -> bytes:
    """The event as JSON bytes, ready to produce."""
    return _encoder.encode(event)


def decode(raw: bytes | bytearray | memoryview | None, expect: str | None = None) -> AnyEvent:
    """Parse a message; ``expect`` names the topic family (``"status"``) it must belong to.

    Raises :class:`DecodeError` whose text says what is wrong.
    """
    if raw is None:
        raise DecodeError("empty message (no value)")
    data = bytes(raw)
    try:
        envelope = _envelope_decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise DecodeError(f"not a JSON object: {exc}") from None
    if envelope.type is None:
        raise DecodeError("missing field 'type'")
    cls = TYPES.get(envelope.type)
    if cls is None:
        raise DecodeError(f"unknown event type {envelope.type!r}")
    if envelope.v is not None and envelope.v != SCHEMA_VERSION:
        raise DecodeError(
            f"unsupported schema version v={envelope.v} for {envelope.type!r} "
            f"(this vidflow reads v={SCHEMA_VERSION})"
        )
    if expect is not None and cls.topic != expect:
        raise DecodeError(f"event type {envelope.type!r} does not belong on the {expect} topic")
    try:
        return _decoders[envelope.type].decode(data)
    except msgspec.ValidationError as exc:
        raise DecodeError(f"invalid {envelope.type!r}: {exc}") from None
    except msgspec.DecodeError as exc:  # pragma: no cover - envelope already parsed as JSON
        raise DecodeError(f"malformed {envelope.type!r}: {exc}") from None


def try_decode(
    raw: bytes | bytearray | memoryview | None, expect: str | None = None
) -> AnyEvent | DecodeError:
    """Like :func:`decode`, but the error is returned as a value: a consumer never raises."""
    try:
        return decode(raw, expect)
    except DecodeError as exc:
        return exc
    except Exception as exc:  # noqa: BLE001 - a consumer must survive any payload
        return DecodeError(f"undecodable message: {type(exc).__name__}: {exc}")


def dead_letter(
    *,
    raw: bytes | None,
    key: bytes | str | None,
    topic: str,
    partition: int,
    offset: int,
    error: str,
    stage: str = "decode",
    ts: float | None = None,
) -> DeadLetter:
    """The DLQ record for a message that could not be used, with its bytes kept whole."""
    original_key = key.decode("utf-8", "replace") if isinstance(key, bytes) else (key or "")
    return DeadLetter(
        id=event_id("dlq", topic, partition, offset, stage),
        original_key=original_key,
        source_topic=topic,
        partition=partition,
        offset=offset,
        raw=raw or b"",
        error=error,
        stage=stage,
        ts=now() if ts is None else ts,
    )


Kind: TypeAlias = Literal["file-events", "uploads", "jobs", "status", "dlq"]
